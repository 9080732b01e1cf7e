"""The cluster profile end to end, then the fault drills on the same running deployment (in this order)."""

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.rehearsal

BAD_CSV = (b"CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)\n"
           b"1,Male,19,15,39\n2,Male,21,15,not-a-number\n3,Female,20,16,6\n")


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


def test_happy_path_produces_sorted_parquet_terminates_and_mails_once(cluster):
    run = cluster.wait(cluster.trigger())
    assert cluster.success_problems(run) == [], run.log_report()
    assert run.trigger_lag is not None and run.sensor_lag is not None


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


def test_with_two_schedulers_the_survivor_finishes_the_run(cluster):
    scheduler = next(k for k in cluster.units("scheduler") if k.endswith("airflow-scheduler"))
    run_id = cluster.trigger()
    _wait_until(lambda: cluster.api.xcom("dag_1", run_id, "trigger_dag_2", "trigger_run_id"), 600,
                "dag_2 to be triggered")
    cluster.supervisor.hold(scheduler)
    cluster.supervisor.kill(scheduler, signal.SIGKILL)
    try:
        run = cluster.wait(run_id)
        assert cluster.supervisor.pid(scheduler) is None, "the killed scheduler stayed down"
    finally:
        cluster.supervisor.hold(scheduler, held=False)
    assert cluster.success_problems(run) == [], run.log_report()


# -- ways a run ends from outside: each still mails once and terminates the cluster (docs/pipeline.md) --

@pytest.fixture
def airflow_client(cluster):
    """The official REST client, logged in as the admin user, as a person operating the cluster uses it."""
    import airflow_client.client as client_package

    password = json.loads(cluster.passwords_file.read_text())[cluster.admin_user]
    token = httpx.post(f"{cluster.api_url}/auth/token", json={"username": cluster.admin_user, "password": password},
                       timeout=30).json()["access_token"]
    with client_package.ApiClient(client_package.Configuration(host=cluster.api_url, access_token=token)) as client:
        yield client


def _one_mail_after_the_run(cluster, run_id: str):
    """The run, once its outcome mail has arrived: a failure callback mails from the dag-processor after the run ended."""
    dag_1 = cluster.api.wait_for_run("dag_1", run_id, timeout=600)
    _wait_until(lambda: [m for m in cluster.aws.sent_mails() if run_id in m["subject"]], 180, "the outcome mail",
                interval=2)
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
        variables.patch_variable("emr_pipeline", VariableBody(key="emr_pipeline", value=value,
                                                              description=variable.description))
        # dagrun_timeout is a DAG attribute: it applies once the dag-processor has parsed the edit.
        _wait_until(lambda: parsed_timeout() == timeout, 180, f"dag_1 parsed with timeout {timeout}", interval=2)

    timeout = timedelta(seconds=90)  # a run reaches dag_2's first step in ~15 s, more on a loaded machine
    configure(json.dumps({**json.loads(variable.value), "run_timeout_seconds": timeout.total_seconds()}), timeout)
    try:
        # dag_2's step sensors are held, so the run can only end by its timeout, while dag_2 works on the cluster.
        with cluster.aws.hold("DescribeStep") as describe:
            run_id = cluster.trigger()
            assert describe.wait_arrived(timeout.total_seconds()), "dag_2 did not reach its first step in time"
            dag_1 = cluster.api.wait_for_run("dag_1", run_id, timeout=300)
            _wait_until(lambda: [m for m in cluster.aws.sent_mails() if run_id in m["subject"]], 180,
                        "the outcome mail", interval=2)
    finally:
        configure(variable.value, original)
    run = cluster.collect(dag_1)
    assert cluster.failure_problems(run) == [], run.log_report()
    states = {t["task_id"]: t["state"] for t in run.task_instances["dag_1"]}
    assert states["wait_for_dag_2"] == "skipped" and states["terminate_emr_cluster"] == "skipped", states
    [mail] = run.new_mails
    assert f"run timed out after {timeout}" in mail["body"] and run.cluster_id in mail["body"]
    assert f"EMR cluster {run.cluster_id} terminated by the failure callback" in mail["body"]
