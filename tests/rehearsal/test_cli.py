"""`python -m rehearsal` as a person runs it: --input, progress lines, the summary, --serve and Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from rehearsal.nodes import REPO_ROOT, free_port
from rehearsal.run import DATASET

HEADER = "CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)\n"


def rehearsal_cli(*args: str, tmpdir: Path) -> subprocess.Popen:
    # TMPDIR: whatever the run leaves behind in "the machine's /tmp" shows up here.
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rehearsal", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class OutputLines:
    """The CLI's merged output, read line by line in a thread (a buffered pipe defeats select())."""

    def __init__(self, process: subprocess.Popen):
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def until(self, pattern: str, timeout: float) -> re.Match:
        """The first line from here on that matches `pattern`; every line read goes to `seen`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.seen[-60:]))

    def rest(self, timeout: float) -> str:
        """Everything until the process closes its output."""
        lines, deadline = [], time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            line = self._lines.get(timeout=left)
            if line is None:
                return "\n".join(lines)
            lines.append(line)
        raise AssertionError("the CLI did not close its output: " + "\n".join(lines[-30:]))


@pytest.mark.parametrize("kind", ["missing", "directory", "not csv"])
def test_input_that_is_not_a_readable_file_is_refused_before_anything_starts(tmp_path, kind):
    path = tmp_path / ("customers.txt" if kind == "not csv" else "customers.csv")
    if kind == "directory":
        path.mkdir()
    if kind == "not csv":
        path.write_text(DATASET.read_text())
    machine_tmp = tmp_path / "tmp"
    machine_tmp.mkdir()
    started = time.monotonic()
    process = rehearsal_cli("--input", str(path), tmpdir=machine_tmp)
    output, _ = process.communicate(timeout=120)

    assert process.returncode == 2, output
    expected = {"missing": "no such file", "directory": "not a regular file", "not csv": "not a .csv file"}[kind]
    assert f"argument --input: {path}: {expected}" in output
    assert "rehearsal: workdir" not in output and not list(machine_tmp.iterdir()), "something started"
    assert time.monotonic() - started < 60


@pytest.mark.rehearsal
def test_serve_keeps_airflow_up_for_the_official_client_and_stops_everything_on_ctrl_c(tmp_path):
    """Also: the emr_pipeline Variable is readable and editable through the REST API, and the edit runs."""
    import airflow_client.client as airflow_client
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.api.variable_api import VariableApi
    from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
    from airflow_client.client.models.variable_body import VariableBody

    rows = DATASET.read_text().splitlines(keepends=True)[:41]  # the header and 40 customers
    mine = tmp_path / "my customers.csv"
    mine.write_text("".join(rows))
    machine_tmp = tmp_path / "tmp"
    machine_tmp.mkdir()
    workdir = tmp_path / "work"
    port = free_port()
    process = rehearsal_cli(
        "--input",
        str(mine),
        "--serve",
        "--keep",
        "--workdir",
        str(workdir),
        "--port",
        str(port),
        "--timeout",
        "600",
        tmpdir=machine_tmp,
    )
    output = OutputLines(process)
    seen = output.seen
    try:
        final = output.until(r"^rehearsal: (ok|FAILED) ", timeout=900)
        assert final.group(1) == "ok", "\n".join(seen)
        url = output.until(r"serving Airflow at (http://\S+)", timeout=30).group(1)
        credentials = output.until(r"user (\w+), password in (.+)$", timeout=30)

        # While it ran: a line per phase and per finished task, with its duration and state.
        lines = "\n".join(seen)
        assert "starting the AWS emulator" in lines and "embedded healthy after" in lines
        assert re.search(r"dag_1\.create_emr_cluster success in \d+\.\ds", lines)
        assert re.search(r"dag_2\.wait_for_sort_and_write_parquet success in \d+\.\ds", lines)
        assert seen.index(final.string) > next(i for i, line in enumerate(seen) if "dag_1.email_outcome" in line)
        # The summary: the input, both row counts, and where the kept Parquet lies.
        summary = final.string
        assert f"input={mine} rows_in=40 rows_out=40 " in summary
        # Every AWS call of the node was authorised against the synthesized template's node role.
        assert re.search(r" iam=enforced calls=[1-9]\d* denied=0 ", summary), summary
        # Its DAG folder was the EFS access point's (bindfs), not a plain directory.
        assert " efs=access-point " in summary, summary
        output_dir = Path(re.search(r" output=(\S+)", summary).group(1))
        assert pq.read_table(output_dir).num_rows == 40
        assert url == f"http://127.0.0.1:{port}"

        # A person with the official client, the user name and the password file the CLI named.
        user, passwords_file = credentials.group(1), Path(credentials.group(2))
        password = json.loads(passwords_file.read_text())[user]
        token = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}).json()["access_token"]
        with airflow_client.ApiClient(airflow_client.Configuration(host=url, access_token=token)) as client:
            dag_runs = DagRunApi(client)
            assert [run.state.value for run in dag_runs.get_dag_runs("dag_1").dag_runs] == ["success"]

            # The pipeline settings are the Variable the UI and the API show, and an edit is what runs next.
            variables = VariableApi(client)
            variable = variables.get_variable("emr_pipeline")
            config = json.loads(variable.value)
            assert config["input_uri"].startswith("s3://") and "deploy" in variable.description
            edited = {**config, "output_uri": config["output_uri"].rstrip("/") + "_edited/"}
            variables.patch_variable(
                "emr_pipeline",
                VariableBody(key="emr_pipeline", value=json.dumps(edited), description=variable.description),
            )
            dag_runs.trigger_dag_run("dag_1", TriggerDAGRunPostBody(logical_date=None))
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                confs = [run.conf for run in dag_runs.get_dag_runs("dag_2").dag_runs]
                if len(confs) == 2:
                    break
                time.sleep(2)
            assert edited["output_uri"] in [conf.get("output_uri") for conf in confs], confs

        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 4, "expected the api-server, scheduler, dag-processor and triggerer"
        process.send_signal(signal.SIGINT)
        rest = output.rest(timeout=120)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:  # a failed assertion: let the harness stop what it started
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    assert process.returncode == 0, rest
    assert "stopped every process" in rest
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}"
    assert not list(machine_tmp.iterdir()), f"left behind in TMPDIR: {list(machine_tmp.iterdir())}"
