"""The cluster profile end to end, then the fault drills on the same running deployment (in this order)."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pymysql
import pytest
import redis
from markupsafe import escape
from playwright.sync_api import expect

from rehearsal import ui
from rehearsal.nodes import REPO_ROOT
from rehearsal.run import PipelineRun

pytestmark = pytest.mark.rehearsal

LOAD_DAG = Path(__file__).parent / "dags" / "connection_load.py"
BAD_CSV = (
    b"CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)\n"
    b"1,Male,19,15,39\n2,Male,21,15,not-a-number\n3,Female,20,16,6\n"
)


def _wait_until(predicate, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


def test_flower_rest_api_answers_the_admin_credentials_only(cluster):
    """Flower's API needs authentication (FLOWER_UNAUTHENTICATED_API stays unset): basic auth, Flower's password."""
    password = json.loads(cluster.flower_passwords_file.read_text())[cluster.admin_user]
    workers = f"{cluster.flower_url}/api/workers"

    assert httpx.get(workers, timeout=30).status_code == 401
    assert httpx.get(workers, auth=(cluster.admin_user, "wrong"), timeout=30).status_code == 401
    response = httpx.get(workers, params={"refresh": "true"}, auth=(cluster.admin_user, password), timeout=60)
    assert response.status_code == 200, response.text
    assert [name for name in response.json() if name.startswith("celery@")], response.json()
    # The credentials are set for Flower alone: the Celery worker (and every task it runs) never sees them.
    for unit in cluster.units("worker"):
        environ = Path(f"/proc/{cluster.supervisor.pid(unit)}/environ").read_bytes().split(b"\0")
        has_auth = any(entry.startswith(b"AIRFLOW__CELERY__FLOWER_BASIC_AUTH=") for entry in environ)
        assert has_auth == unit.endswith("flower"), unit


def _node_param(cluster, key: str) -> str:
    return cluster.nodes[0].params[key]


def test_api_refuses_anonymous_requests_and_admin_logs_in_with_the_secret(cluster):
    """The api-server as deployed: FAB's user store, the admin user with the password from Secrets Manager."""
    password = json.loads(cluster.passwords_file.read_text())[cluster.admin_user]
    with httpx.Client(base_url=cluster.api_url, timeout=60) as api:
        assert api.get("/api/v2/dags").status_code == 401
        assert (
            api.post("/auth/token", json={"username": cluster.admin_user, "password": "not-the-secret"}).status_code
            == 401
        )
        login = api.post("/auth/token", json={"username": cluster.admin_user, "password": password})
        assert login.status_code in (200, 201), login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert api.get("/api/v2/dags", headers=headers).status_code == 200
        # A user of the FAB user store, with FAB's Admin role (SimpleAuthManager has neither).
        user = api.get(f"/auth/fab/v1/users/{cluster.admin_user}", headers=headers)
        assert user.status_code == 200 and user.headers.get("content-type", "").startswith("application/json"), (
            f"no FAB user {cluster.admin_user}: HTTP {user.status_code} {user.headers.get('content-type')}: {user.text[:200]}"
        )
        assert [role["name"] for role in user.json()["roles"]] == ["Admin"]


def test_database_and_broker_speak_only_verified_tls_and_the_nodes_use_them(cluster):
    """As RDS with require_secure_transport and ElastiCache with in-transit encryption: no plain connection,
    and a client that does not trust the server's CA is refused. The nodes are connected all the same."""
    credentials = json.loads(cluster.aws.secret_value(cluster.aws.secret_ids["DB_SECRET_ID"]))
    login = {
        "host": "127.0.0.1",
        "port": int(_node_param(cluster, "DB_PORT")),
        "user": credentials["username"],
        "password": credentials["password"],
        "database": _node_param(cluster, "DB_NAME"),
    }
    # MariaDB refuses a plain login as "Access denied" (MySQL 8.4 says "insecure transport"); the same
    # credentials over TLS get in below, so the transport is what is refused.
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**login)
    with pytest.raises(pymysql.err.OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        pymysql.connect(**login, ssl=ssl.create_default_context())  # the OS trust store only
    with pymysql.connect(**login, ssl={"ca": _node_param(cluster, "DB_CA_BUNDLE")}) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cursor.fetchone()[1]
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
            (credentials["username"],),
        )
        assert cursor.fetchone()[0] > 0, "no node holds a connection to the TLS-only database"

    broker = {
        "host": "127.0.0.1",
        "port": int(_node_param(cluster, "REDIS_PORT")),
        "socket_timeout": 5,
        "password": cluster.aws.secret_value(cluster.aws.secret_ids["REDIS_AUTH_SECRET_ID"]),
    }
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(**broker).ping()
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        redis.Redis(**broker, ssl=True, ssl_cert_reqs="required").ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(
            **{**broker, "password": "wrong"}, ssl=True, ssl_ca_certs=_node_param(cluster, "REDIS_CA_BUNDLE")
        ).ping()
    client = redis.Redis(**broker, ssl=True, ssl_ca_certs=_node_param(cluster, "REDIS_CA_BUNDLE"))
    assert len(client.client_list()) > 1, "no node holds a connection to the TLS-only broker"
    client.close()
    # Flower's broker view opens its own connection (Celery's broker_use_ssl), apart from the worker's.
    password = json.loads(cluster.flower_passwords_file.read_text())[cluster.admin_user]
    httpx.get(
        f"{cluster.flower_url}/api/workers", params={"refresh": "true"}, auth=(cluster.admin_user, password), timeout=60
    ).raise_for_status()
    queues = httpx.get(f"{cluster.flower_url}/api/queues/length", auth=(cluster.admin_user, password), timeout=60)
    assert queues.status_code == 200, queues.text
    assert queues.json()["active_queues"], queues.text


def test_the_nodes_reach_the_api_server_by_the_templates_dns_name_which_resolves_only_in_their_view(cluster):
    """The scheduler's and the worker's Execution API URL has the private zone's name (the template's value,
    not loopback in its place); the boot created the record once the api-server signalled, in the nodes' own
    /etc/hosts. The machine itself does not know the name. (The pipeline runs below prove the worker's task
    processes reach the Execution API by it.)"""
    zone = cluster.private_zone
    (record,) = zone.records
    assert zone.missing() == []
    for node in cluster.nodes:
        assert node.params["API_SERVER_HOST"] == ("127.0.0.1" if node.role == "api-server" else record.name)
    worker = next(node for node in cluster.nodes if node.role == "worker")
    assert f"http://{record.name}:" in (worker.home / "airflow.env").read_text()
    # The worker's running Celery process is in a mount namespace of its own, whose /etc/hosts has the record.
    pid = next(pid for key in cluster.units("worker") if (pid := cluster.supervisor.pid(key)))
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert f"127.0.0.1 {record.name}" in Path(f"/proc/{pid}/root/etc/hosts").read_text()
    found = subprocess.run(zone.command(["getent", "hosts", record.name]), capture_output=True, text=True, check=True)
    assert found.stdout.split()[0] == "127.0.0.1"
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(record.name, 8080)


def test_many_tasks_at_once_stay_within_the_database_connection_budget(cluster):
    """The peak connection count the database saw (Max_used_connections) against what
    stacks/connection_budget.py allows the nodes as the rehearsal renders them."""
    dag_file = Path(_node_param(cluster, "DAGS_FOLDER")) / LOAD_DAG.name
    shutil.copy(LOAD_DAG, dag_file)
    try:
        cluster.api.wait_for_dag("connection_load", timeout=180)
        cluster.api.unpause("connection_load")
        run_id = cluster.api.trigger("connection_load")["dag_run_id"]
        state = cluster.api.wait_for_run("connection_load", run_id, timeout=600)["state"]
    finally:
        dag_file.unlink()
    assert state == "success", cluster.api.task_instances("connection_load", run_id)
    peak, budget = cluster.connection_peak(), cluster.connection_budget
    print(f"db_connections={peak}/{budget.total}: {budget.detail()}")
    assert 1 < peak <= budget.total, cluster.connection_problems()


def test_the_shared_dag_folder_has_the_efs_access_point_semantics(cluster, tmp_path):
    """Every file is the access point's uid/gid, and chown is refused even for root, as on EFS."""
    scheduler = next(node for node in cluster.nodes if node.role == "scheduler")
    dags = Path(scheduler.params["DAGS_FOLDER"])
    uid, gid = int(scheduler.params["AIRFLOW_UID"]), int(scheduler.params["AIRFLOW_GID"])
    synced = sorted(dags.glob("*.py"))
    assert synced and {(path.stat().st_uid, path.stat().st_gid) for path in synced} == {(uid, gid)}
    if os.geteuid() == 0:
        with pytest.raises(PermissionError):
            os.chown(synced[0], 0, 0)
        # A DAG sync that keeps owners (rsync -a as root) fails here as on the access point.
        source = tmp_path / "dags"
        source.mkdir()
        (source / "probe.py").write_text("# probe\n")
        assert shutil.which("rsync")
        result = subprocess.run(["rsync", "-a", f"{source}/", f"{dags}/"], capture_output=True, text=True, check=False)
        (dags / "probe.py").unlink(missing_ok=True)
        assert result.returncode != 0 and "chown" in result.stderr, result.stderr


@dataclass(frozen=True)
class FirstRun:
    run: PipelineRun
    killed_scheduler: str
    scheduler_stayed_down: bool


@pytest.fixture(scope="module")
def happy_run(cluster) -> FirstRun:
    """The module's first run, on the sample, and the scheduler drill on it: once dag_2 is triggered, one of the
    two schedulers is killed and kept down until the run has ended. The happy path checks the run, the UI test
    looks at it, the drill checks that the survivor finished it. (One run for the three: a full run is a minute
    or more of `make test`, and a run the killed scheduler would spoil fails the happy path as well.)"""
    scheduler = next(k for k in cluster.units("scheduler") if k.endswith("airflow-scheduler"))
    run_id = cluster.trigger()
    _wait_until(
        lambda: cluster.api.xcom("dag_1", run_id, "trigger_dag_2", "trigger_run_id"), 600, "dag_2 to be triggered"
    )
    cluster.supervisor.hold(scheduler)
    cluster.supervisor.kill(scheduler, signal.SIGKILL)
    try:
        run = cluster.wait(run_id)
        down = cluster.supervisor.pid(scheduler) is None
    finally:
        cluster.supervisor.hold(scheduler, held=False)
    return FirstRun(run, scheduler, down)


def test_happy_path_produces_sorted_parquet_terminates_and_mails_once(cluster, happy_run):
    run = happy_run.run
    assert cluster.success_problems(run) == [], run.log_report()
    assert run.trigger_lag is not None and run.sensor_lag is not None


def test_a_person_signed_in_to_the_ui_sees_both_runs_succeed(cluster, happy_run, tmp_path, request):
    """Debian's Chromium signs in on the api-server's login page with the admin password from the emulated
    Secrets Manager and reads the run states the UI shows: DAG_1's Runs tab, then the runs of both DAGs."""
    run = happy_run.run
    assert run.dag_2, "dag_1 never triggered dag_2"
    password = json.loads(cluster.passwords_file.read_text())[cluster.admin_user]
    dag_1_run, dag_2_run = run.dag_1["dag_run_id"], run.dag_2["dag_run_id"]
    started = time.monotonic()
    with ui.signed_in(cluster.api_url, cluster.admin_user, password, path="/dags") as page:
        ui.open_dag_runs_tab(page, "DAG_1")
        expect(ui.cell(page, dag_1_run, "State")).to_have_text("Success", timeout=ui.TIMEOUT_MS)
        page.screenshot(path=tmp_path / "ui-dag_1.png")
        ui.open_all_dag_runs(page)
        expect(ui.cell(page, dag_2_run, "Dag ID")).to_have_text(re.compile(r"^DAG_2\b"), timeout=ui.TIMEOUT_MS)
        for run_id in (dag_1_run, dag_2_run):
            expect(ui.cell(page, run_id, "State")).to_have_text("Success", timeout=ui.TIMEOUT_MS)
        page.screenshot(path=tmp_path / "ui-dag-runs.png")
    print(f"ui: signed in and read both runs in {time.monotonic() - started:.1f}s")
    if request.config.getoption("--docs-screenshots", default=False):
        for name in ("ui-dag_1.png", "ui-dag-runs.png"):
            shutil.copyfile(tmp_path / name, REPO_ROOT / "docs" / name)


def test_bad_input_fails_both_dags_terminates_the_cluster_and_mails_one_failure(cluster):
    cluster.aws.upload_bytes(BAD_CSV, cluster.aws.pipeline_config["input_uri"])
    try:
        run = cluster.wait(cluster.trigger())
    finally:
        cluster.restore_input()
    assert cluster.failure_problems(run) == [], run.log_report()
    sensor = next(t for t in run.task_instances["dag_1"] if t["task_id"] == "wait_for_dag_2")
    assert sensor["state"] == "failed"
    # Fails on dag_2's failure, not on its 6-hour timeout.
    assert run.sensor_lag is not None and run.sensor_lag < 120
    assert any("EMR step" in name for name in run.log_tails), "the failed Spark step's stderr is reported"
    # The cause a person reads (the CLI's summary) is the sort job's own error line, carried by the EMR
    # step's failure details, and the one FAILED mail names it too.
    job_error = re.match(r"EMR step [^:]+: (error: [^/;]+)", run.causes[0])
    assert job_error, run.causes
    (mail,) = run.new_mails
    assert "EMR pipeline FAILED" in mail["subject"] + mail["body"], mail
    error_line = job_error.group(1).strip()
    assert error_line in mail["body"] or str(escape(error_line)) in mail["body"], mail["body"]


def test_worker_killed_mid_task_is_restarted_and_the_run_completes(cluster):
    worker = next(k for k in cluster.units("worker") if k.endswith("airflow-celery-worker"))
    restarts = cluster.supervisor.restarts(worker)
    # terminate_emr_cluster is safe to retry. Its TerminateJobFlows call is held at the emulator, so the
    # task is certainly running on the worker when the kill lands, however fast or slow the machine.
    with cluster.aws.hold("TerminateJobFlows") as terminate_call:
        run_id = cluster.trigger()
        if not terminate_call.wait_arrived(600):
            pytest.fail("terminate_emr_cluster never called TerminateJobFlows")
        running = {t["task_id"]: t for t in cluster.api.task_instances("dag_1", run_id) if t["state"] == "running"}
        assert list(running) == ["terminate_emr_cluster"]
        assert running["terminate_emr_cluster"]["try_number"] == 1
        cluster.supervisor.kill(worker, signal.SIGKILL)
        _wait_until(lambda: cluster.supervisor.restarts(worker) == restarts + 1, 120, "the worker's restart")
    run = cluster.wait(run_id)
    assert cluster.success_problems(run) == [], run.log_report()
    terminate = next(t for t in run.task_instances["dag_1"] if t["task_id"] == "terminate_emr_cluster")
    # The killed try was failed by the heartbeat timeout and the retry finished the job.
    assert terminate["try_number"] == 2
    assert cluster.supervisor.restarts(worker) == restarts + 1


def test_with_two_schedulers_the_survivor_finishes_the_run(cluster, happy_run):
    """The drill runs on the happy run (the fixture): everything after dag_2's trigger was the survivor's work."""
    assert happy_run.scheduler_stayed_down, f"{happy_run.killed_scheduler} came back before the run ended"
    assert cluster.success_problems(happy_run.run) == [], happy_run.run.log_report()


# -- ways a run ends from outside: each still mails once and terminates the cluster (docs/pipeline.md) --


@pytest.fixture
def airflow_client(cluster):
    """The official REST client, logged in as the admin user, as a person operating the cluster uses it."""
    import airflow_client.client as client_package

    password = json.loads(cluster.passwords_file.read_text())[cluster.admin_user]
    token = httpx.post(
        f"{cluster.api_url}/auth/token", json={"username": cluster.admin_user, "password": password}, timeout=30
    ).json()["access_token"]
    with client_package.ApiClient(client_package.Configuration(host=cluster.api_url, access_token=token)) as client:
        yield client


def _one_mail_after_the_run(cluster, run_id: str):
    """The run, once its outcome mail has arrived: a failure callback mails from the dag-processor after the run ended."""
    dag_1 = cluster.api.wait_for_run("dag_1", run_id, timeout=600)
    _wait_until(
        lambda: [m for m in cluster.aws.sent_mails() if run_id in m["subject"]], 180, "the outcome mail", interval=2
    )
    return cluster.collect(dag_1)


def test_a_run_marked_failed_by_a_user_terminates_the_cluster_and_mails_one_failure(cluster, airflow_client):
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.models.dag_run_mutable_states import DagRunMutableStates
    from airflow_client.client.models.dag_run_patch_body import DAGRunPatchBody

    run_id = cluster.trigger()

    def waiting_for_dag_2() -> bool:
        try:
            states = {t["task_id"]: t["state"] for t in cluster.api.task_instances("dag_1", run_id)}
        except httpx.TimeoutException:  # an api-server slowed down by a loaded machine: ask again
            return False
        assert states.get("wait_for_dag_2") in (None, "scheduled", "queued", "running", "deferred"), states
        return states.get("wait_for_dag_2") == "deferred"

    # Where a run spends its life: wait_for_dag_2 deferred while dag_2 works on the cluster.
    _wait_until(waiting_for_dag_2, 600, "wait_for_dag_2 to defer", interval=2)
    # As the UI's "Mark run as failed" does.
    DagRunApi(airflow_client).patch_dag_run("dag_1", run_id, DAGRunPatchBody(state=DagRunMutableStates.FAILED))
    run = _one_mail_after_the_run(cluster, run_id)

    assert cluster.failure_problems(run) == [], run.log_report()
    states = {t["task_id"]: t["state"] for t in run.task_instances["dag_1"]}
    assert states["email_outcome"] == "skipped" and states["terminate_emr_cluster"] == "success", states
    [mail] = run.new_mails
    assert "marked failed by a user" in mail["body"] and run.cluster_id in mail["body"]


def test_a_run_past_its_timeout_terminates_the_cluster_and_mails_one_failure(cluster, airflow_client):
    """dagrun_timeout from the Variable's run_timeout_seconds; the Variable is restored before the test ends."""
    from datetime import timedelta

    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.api.variable_api import VariableApi
    from airflow_client.client.models.variable_body import VariableBody
    from pydantic import TypeAdapter

    variables, dags = VariableApi(airflow_client), DAGApi(airflow_client)
    variable = variables.get_variable("emr_pipeline")

    def parsed_timeout() -> timedelta:
        return TypeAdapter(timedelta).validate_python(dags.get_dag_details("dag_1").dag_run_timeout)

    original = parsed_timeout()
    assert original > timedelta(hours=12), "the default outlasts wait_for_dag_2's own limit"

    def configure(value: str, timeout: timedelta) -> None:
        variables.patch_variable(
            "emr_pipeline", VariableBody(key="emr_pipeline", value=value, description=variable.description)
        )
        # dagrun_timeout is a DAG attribute: it applies once the dag-processor has parsed the edit.
        _wait_until(lambda: parsed_timeout() == timeout, 180, f"dag_1 parsed with timeout {timeout}", interval=2)

    timeout = timedelta(seconds=45)  # a run reaches dag_2's first step in ~15 s on an idle machine
    configure(json.dumps({**json.loads(variable.value), "run_timeout_seconds": timeout.total_seconds()}), timeout)
    try:
        # dag_2's step sensors are held, so the run can only end by its timeout, while dag_2 works on the cluster.
        with cluster.aws.hold("DescribeStep") as describe:
            run_id = cluster.trigger()
            assert describe.wait_arrived(timeout.total_seconds()), "dag_2 did not reach its first step in time"
            dag_1 = cluster.api.wait_for_run("dag_1", run_id, timeout=300)
            _wait_until(
                lambda: [m for m in cluster.aws.sent_mails() if run_id in m["subject"]],
                180,
                "the outcome mail",
                interval=2,
            )
    finally:
        configure(variable.value, original)
    run = cluster.collect(dag_1)
    assert cluster.failure_problems(run) == [], run.log_report()
    states = {t["task_id"]: t["state"] for t in run.task_instances["dag_1"]}
    assert states["wait_for_dag_2"] == "skipped" and states["terminate_emr_cluster"] == "skipped", states
    [mail] = run.new_mails
    assert f"run timed out after {timeout}" in mail["body"] and run.cluster_id in mail["body"]
    assert f"EMR cluster {run.cluster_id} terminated by the failure callback" in mail["body"]
