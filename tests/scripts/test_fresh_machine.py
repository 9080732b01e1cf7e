"""The README's first commands on a fresh machine, and a clone without ../shared beside it.

`make` runs for real; only the machine is played by stand-ins on PATH: `dpkg-query` reports nothing
installed (a clean Debian machine), `apt-get`, `uv` and the virtualenv's `python` log what they are
asked to do, so the test sees whether the mysqlclient build headers arrive before the first
`uv pip install` (which builds mysqlclient from source).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config import REPO_ROOT

BUILD_HEADERS = {"pkg-config", "default-libmysqlclient-dev", "build-essential"}

STAND_INS = {
    # Nothing is installed on a fresh machine.
    "dpkg-query": "exit 1",
    "apt-get": 'echo "apt-get $*" >> "$CALL_LOG"',
    # `uv venv DIR` makes the virtualenv whose python logs its invocations; `uv pip install` needs the headers.
    "uv": """echo "uv $*" >> "$CALL_LOG"
if [[ $1 == venv ]]; then
  dir=${!#}; mkdir -p "$dir/bin"
  printf '#!/usr/bin/env bash\\necho "venv-python $*" >> "$CALL_LOG"\\n' > "$dir/bin/python"
  cp "$dir/bin/python" "$dir/bin/pytest"; chmod +x "$dir/bin/python" "$dir/bin/pytest"
fi""",
}
# PATH holds the stand-ins and these tools only, so the developer's Java, Node or uv are not found.
BASE_TOOLS = ("bash", "make", "env", "mkdir", "touch", "cp", "chmod", "cat", "grep", "rm", "dirname", "seq", "sleep")


def run_make(target: str, tmp_path: Path) -> list[str]:
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    for name, body in STAND_INS.items():
        (stand_ins / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (stand_ins / name).chmod(0o755)
    for tool in BASE_TOOLS:
        (stand_ins / tool).symlink_to(shutil.which(tool))
    call_log = tmp_path / "calls.log"
    call_log.touch()
    env = {
        "PATH": str(stand_ins),
        "HOME": str(tmp_path),
        "CALL_LOG": str(call_log),
    }
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO_ROOT),
            target,
            f"VENV={tmp_path}/venv",
            f"CHECKOV_VENV={tmp_path}/checkov",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    calls = call_log.read_text().splitlines()
    return calls, result


def first(calls: list[str], prefix: str) -> int:
    return next(index for index, call in enumerate(calls) if call.startswith(prefix))


def installed_before(calls: list[str], index: int) -> set[str]:
    return {
        package
        for call in calls[:index]
        if call.startswith("apt-get install")
        for package in call.split()[2:]
        if not package.startswith("-")
    }


@pytest.mark.parametrize("target", ["demo", "synth"])
def test_targets_install_the_build_headers_before_the_virtualenv(target, tmp_path):
    calls, result = run_make(target, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    pip_install = first(calls, "uv pip install")
    assert installed_before(calls, pip_install) >= BUILD_HEADERS, calls


def test_demo_installs_java_rsync_and_bindfs_before_it_runs(tmp_path):
    calls, result = run_make("demo", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    demo = first(calls, "venv-python -m rehearsal --profile embedded")
    # bindfs: the embedded node's DAG folder has the EFS access point's semantics (rehearsal/access_point.py).
    assert {"openjdk-17-jre-headless", "rsync", "bindfs"} <= installed_before(calls, demo), calls
    # The demo needs no database or cache server.
    assert not {"mariadb-server", "redis-server"} & installed_before(calls, len(calls)), calls


def copy_of_the_clone(tmp_path: Path) -> Path:
    """The working tree's files (tracked and new, not ignored) in <tmp>/clone, with no ../shared beside it."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    clone = tmp_path / "clone"
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    assert not (tmp_path / "shared").exists()
    # Installed like the original: `make venv` built the EMR release's interpreter there.
    if (REPO_ROOT / ".venv-emr").is_dir():
        (clone / ".venv-emr").symlink_to(REPO_ROOT / ".venv-emr")
    return clone


def test_a_clone_without_shared_collects_and_runs_its_dataset_tests(tmp_path):
    clone = copy_of_the_clone(tmp_path)
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--collect-only",
            "--snapshot-warn-unused",
            "-p",
            "no:cacheprovider",
            "tests",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    # A test that uploads the dataset to the emulator and reads it back byte for byte.
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/rehearsal/aws/test_local_aws.py::test_dataset_and_steps_are_uploaded_byte_identical",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0 and "1 passed" in ran.stdout, ran.stdout[-3000:] + ran.stderr[-3000:]
