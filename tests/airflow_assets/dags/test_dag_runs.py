"""Run dag_1 for real with dag.test() against in-process AWS (moto).

dag_2 cannot run here (moto's EMR never finishes steps, and dag.test() runs one DAG), so a helper thread
plays the scheduler for the dag_2 run that dag_1 triggers: it settles that run as succeeded or failed.
Everything else -- cluster creation from the rendered overrides, the trigger, the sensor finding the run by
its logical date, the teardown, the SES mail and the final run state -- is the real thing.
"""

from __future__ import annotations

import copy
import email
import json
import threading
import time
from email import policy

import pytest

from ...pipeline_support import DAGS_FOLDER, PIPELINE_CONFIG

DATA_DAG = "dag_2"


def settle_triggered_runs(outcome: str, stop: threading.Event, seen: list, prepare=None) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    while not stop.is_set():
        with create_session() as session:
            runs = session.query(DagRun).filter(DagRun.dag_id == DATA_DAG, DagRun.state != DagRunState.SUCCESS)
            for run in runs.filter(DagRun.state != DagRunState.FAILED):
                tis = sorted(
                    session.query(TaskInstance).filter_by(dag_id=DATA_DAG, run_id=run.run_id), key=lambda t: t.task_id
                )
                for ti in tis:
                    if outcome == "success":
                        ti.state = TaskInstanceState.SUCCESS
                    else:
                        ti.state = (
                            TaskInstanceState.FAILED
                            if ti.task_id == "load_into_hive"
                            else TaskInstanceState.UPSTREAM_FAILED
                        )
                if prepare is not None:  # what dag_2's EMR steps would have left behind
                    prepare(dict(run.conf or {}))
                run.state = DagRunState.SUCCESS if outcome == "success" else DagRunState.FAILED
                seen.append((run.run_id, run.logical_date, dict(run.conf or {}), len(tis)))
        time.sleep(0.2)


# Every sensor_mode the Variable accepts; deferrable is the default (the test configuration sets none).
SENSOR_MODES = ["deferrable", "reschedule", "poke"]
INLINE_TRIGGER_DONE = "[DAG TEST] Trigger completed"  # logged only when the trigger yielded an event


@pytest.fixture
def sensor_mode(request, monkeypatch):
    """The test's ``sensor_mode`` parameter in the Variable; without one, the default configuration (deferrable)."""
    mode = getattr(request, "param", "deferrable")
    if mode != "deferrable":
        monkeypatch.setenv("AIRFLOW_VAR_EMR_PIPELINE", json.dumps({**PIPELINE_CONFIG, "sensor_mode": mode}))
    return mode


@pytest.fixture
def dags(pipeline_environment, sensor_mode):
    """Both DAGs parsed with the test's Variable: the sensors' way of waiting is decided when they are parsed."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {}
    return bag.dags


def triggers_run(caplog) -> int:
    """How many deferrals dag.test() resumed after running the trigger inline to its event."""
    return sum(INLINE_TRIGGER_DONE in message for message in caplog.messages)


@pytest.fixture
def run_dag_1(airflow_db, aws, dags):
    """Run dag_1 once; dag_2's run is settled with ``dag_2_outcome``. Returns (dag_1 run, dag_2 runs)."""

    def run(dag_2_outcome: str = "success", prepare=None):
        stop, seen = threading.Event(), []
        helper = threading.Thread(target=settle_triggered_runs, args=(dag_2_outcome, stop, seen, prepare), daemon=True)
        helper.start()
        try:
            dag_run = dags["dag_1"].test()
        finally:
            stop.set()
            helper.join()
        return dag_run, seen

    return run


def emr():
    import boto3

    return boto3.client("emr", region_name="us-east-1")


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def only_mail(ses_backend):
    [message] = ses_backend.sent_messages
    assert message.source == PIPELINE_CONFIG["sender_email"]
    assert message.destinations == [PIPELINE_CONFIG["alert_email"]] or PIPELINE_CONFIG["alert_email"] in str(
        message.destinations
    )
    parsed = email.message_from_string(message.raw_data, policy=policy.default)
    return parsed["Subject"], parsed.get_body(preferencelist=("html", "plain")).get_content()


def created_cluster(triggered) -> dict:
    [(_, _, conf, _)] = triggered
    return emr().describe_cluster(ClusterId=conf["cluster_id"])["Cluster"]


@pytest.mark.parametrize("sensor_mode", ["deferrable", "reschedule"], indirect=True)
def test_success_runs_dag_2_on_the_new_cluster_and_terminates_it(run_dag_1, aws, sensor_mode, caplog):
    dag_run, triggered = run_dag_1("success")

    assert dag_run.state == "success"
    assert triggers_run(caplog) == (1 if sensor_mode == "deferrable" else 0)
    assert set(task_states(dag_run).values()) == {"success"}
    [(run_id, logical_date, conf, task_count)] = triggered
    assert run_id == f"dag_1__{dag_run.run_id}__try1" and task_count == 4
    published = dag_run.get_task_instance("trigger_dag_2").xcom_pull(
        task_ids="trigger_dag_2", key="trigger_logical_date_iso"
    )
    assert logical_date.isoformat() == published  # the sensor waited for exactly this run
    cluster = created_cluster(triggered)
    assert cluster["Id"] == dag_run.get_task_instance("create_emr_cluster").xcom_pull(task_ids="create_emr_cluster")
    assert conf == {
        "cluster_id": cluster["Id"],
        "input_uri": PIPELINE_CONFIG["input_uri"],
        "output_uri": PIPELINE_CONFIG["output_uri"],
    }
    assert cluster["Status"]["State"] == "TERMINATED"
    assert cluster["ReleaseLabel"] == PIPELINE_CONFIG["release_label"]
    assert sorted(a["Name"] for a in cluster["Applications"]) == ["Hadoop", "Hive", "Spark"]
    assert cluster["AutoTerminate"] is False  # KeepJobFlowAliveWhenNoSteps
    assert cluster["LogUri"] == PIPELINE_CONFIG["log_uri"]
    assert cluster["Ec2InstanceAttributes"]["Ec2SubnetId"] == PIPELINE_CONFIG["subnet_id"]
    assert {"Key": "airflow:run_id", "Value": dag_run.run_id} in cluster["Tags"]

    subject, body = only_mail(aws)
    assert "SUCCEEDED" in subject and dag_run.run_id in subject
    assert cluster["Id"] in body and PIPELINE_CONFIG["output_uri"] in body
    assert "Failed tasks</th><td>none" in body and "Duration</th><td>0:00:" in body


@pytest.mark.parametrize("sensor_mode", SENSOR_MODES, indirect=True)
def test_failed_dag_2_fails_the_run_but_still_terminates_and_mails(run_dag_1, aws, sensor_mode, caplog):
    dag_run, triggered = run_dag_1("failed")

    assert dag_run.state == "failed"
    assert triggers_run(caplog) == (1 if sensor_mode == "deferrable" else 0)
    states = task_states(dag_run)
    assert states["wait_for_dag_2"] == "failed"  # failed_states: at once, not after a timeout
    assert states["terminate_emr_cluster"] == "success"
    assert created_cluster(triggered)["Status"]["State"] == "TERMINATED"
    subject, body = only_mail(aws)
    assert "FAILED" in subject
    assert "dag_1.wait_for_dag_2 (failed)" in body and "dag_2.load_into_hive (failed)" in body
    assert created_cluster(triggered)["Id"] in body and PIPELINE_CONFIG["output_uri"] in body


def test_failed_termination_is_reported_and_fails_the_run(run_dag_1, aws, dags, monkeypatch):
    from moto.emr.exceptions import ValidationException
    from moto.emr.models import ElasticMapReduceBackend

    def refuse(self, job_flow_ids):
        raise ValidationException("termination refused by the test")

    monkeypatch.setattr(ElasticMapReduceBackend, "terminate_job_flows", refuse)
    monkeypatch.setattr(dags["dag_1"].get_task("terminate_emr_cluster"), "retries", 0)
    dag_run, triggered = run_dag_1("success")

    assert dag_run.state == "failed"
    assert task_states(dag_run)["terminate_emr_cluster"] == "failed"
    assert task_states(dag_run)["wait_for_dag_2"] == "success"
    subject, body = only_mail(aws)
    assert "FAILED" in subject and "dag_1.terminate_emr_cluster (failed)" in body


def test_failed_creation_skips_everything_but_the_mail(run_dag_1, aws, dags, monkeypatch):
    import json

    broken = {k: v for k, v in PIPELINE_CONFIG.items() if k != "release_label"}
    monkeypatch.setenv("AIRFLOW_VAR_EMR_PIPELINE", json.dumps(broken))
    monkeypatch.setattr(dags["dag_1"].get_task("create_emr_cluster"), "retries", 0)
    dag_run, triggered = run_dag_1("success")

    assert dag_run.state == "failed" and triggered == []
    states = task_states(dag_run)
    assert states["create_emr_cluster"] == "failed"
    assert states["terminate_emr_cluster"] in {"skipped", "upstream_failed"}  # nothing to terminate
    assert emr().list_clusters()["Clusters"] == []
    subject, body = only_mail(aws)
    assert "FAILED" in subject and "dag_1.create_emr_cluster (failed)" in body and "not created" in body


def test_create_failing_after_run_job_flow_terminates_its_cluster(run_dag_1, aws, monkeypatch):
    """E.g. DescribeCluster (for the log link) refused: the cluster exists but its id never reached XCom."""
    from airflow.providers.amazon.aws.operators import emr as emr_operators
    from botocore.exceptions import ClientError

    def refused(**_):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "DescribeCluster")

    monkeypatch.setattr(emr_operators, "get_log_uri", refused)
    dag_run, triggered = run_dag_1("success")

    assert dag_run.state == "failed" and triggered == []
    assert task_states(dag_run)["create_emr_cluster"] == "failed"
    [cluster] = emr().list_clusters()["Clusters"]
    assert cluster["Status"]["State"] in {"TERMINATING", "TERMINATED"}, "no cluster is left to idle"


def test_every_run_triggers_a_fresh_dag_2_run(run_dag_1, aws):
    first, first_triggered = run_dag_1("success")
    second, second_triggered = run_dag_1("success")

    assert first.state == second.state == "success"
    (run_a, date_a, conf_a, _), (run_b, date_b, conf_b, _) = first_triggered + second_triggered
    assert run_a != run_b and date_a != date_b
    assert conf_a["cluster_id"] != conf_b["cluster_id"]  # never a stale cluster id


def test_each_try_of_the_trigger_gets_its_own_run_and_logical_date(dagbag):
    """Clearing/retrying trigger_dag_2 must not hit "DAG run already exists" nor reuse the old run."""
    from airflow.sdk.exceptions import DagRunTriggerException

    template = dagbag.dags["dag_1"].get_task("trigger_dag_2")

    class TryInstance:
        def __init__(self, try_number):
            self.try_number, self.pushed = try_number, {}

        def xcom_push(self, key, value):
            self.pushed[key] = value

        def get_dag(self, dag_id):
            assert dag_id == "dag_2"
            return type("DagState", (), {"is_paused": False})()

    triggered = []
    for try_number in (1, 2):
        task = copy.copy(template)
        task.trigger_run_id = f"dag_1__manual__x__try{try_number}"  # as rendered from the template
        task.conf = {"cluster_id": "j-1"}
        ti = TryInstance(try_number)
        with pytest.raises(DagRunTriggerException) as raised:
            task.execute({"ti": ti, "task_instance": ti})
        assert raised.value.reset_dag_run is False
        assert raised.value.logical_date.isoformat() == ti.pushed["trigger_logical_date_iso"]
        triggered.append((raised.value.dag_run_id, raised.value.logical_date))
    assert triggered[0][0] != triggered[1][0] and triggered[0][1] < triggered[1][1]


def finish_steps(state: str, stop: threading.Event, described: dict) -> None:
    """Play EMR: a step ends in ``state`` once a sensor has seen it unfinished (described twice).

    The first look (the sensor's check on the worker) always finds the step pending, so a deferrable
    sensor really defers and a reschedule-mode sensor really reschedules.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    while not stop.is_set():
        for cluster in list(emr_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].clusters.values()):
            for step in cluster.steps:
                if step.state in {"PENDING", "RUNNING"} and described.get(step.id, 0) >= 2:
                    step.state = state
        time.sleep(0.2)


@pytest.fixture
def run_dag_2(airflow_db, aws, dags, monkeypatch):
    from moto.emr.models import ElasticMapReduceBackend

    described: dict[str, int] = {}
    describe_step = ElasticMapReduceBackend.describe_step

    def counting_describe_step(self, cluster_id, step_id):
        described[step_id] = described.get(step_id, 0) + 1
        return describe_step(self, cluster_id, step_id)

    monkeypatch.setattr(ElasticMapReduceBackend, "describe_step", counting_describe_step)

    def run(step_outcome: str):
        cluster_id = emr().run_job_flow(
            Name="dag_2-test",
            ReleaseLabel=PIPELINE_CONFIG["release_label"],
            Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
            JobFlowRole="EMR_EC2_DefaultRole",
            ServiceRole="EMR_DefaultRole",
        )["JobFlowId"]
        stop = threading.Event()
        helper = threading.Thread(target=finish_steps, args=(step_outcome, stop, described), daemon=True)
        helper.start()
        try:
            dag_run = dags["dag_2"].test(run_conf={"cluster_id": cluster_id})
        finally:
            stop.set()
            helper.join()
        steps = list(reversed(emr().list_steps(ClusterId=cluster_id)["Steps"]))  # API lists newest first
        return dag_run, steps

    return run


@pytest.mark.parametrize("sensor_mode", ["deferrable", "reschedule"], indirect=True)
def test_dag_2_adds_both_steps_in_order_and_waits_for_each(run_dag_2, sensor_mode, caplog):
    dag_run, steps = run_dag_2("COMPLETED")

    assert dag_run.state == "success"
    assert triggers_run(caplog) == (2 if sensor_mode == "deferrable" else 0)  # each step sensor deferred
    assert [s["Name"] for s in steps] == ["load_customers_into_hive", "sort_customers_by_spending_score"]
    load, spark = (s["Config"] for s in steps)
    assert load["Jar"] == spark["Jar"] == "command-runner.jar"
    assert load["Args"][:6] == [
        "spark-submit", "--deploy-mode", "cluster", "--py-files",
        PIPELINE_CONFIG["steps_uri"] + "sort_by_spending_score.py", PIPELINE_CONFIG["steps_uri"] + "load_customers.py",
    ]  # fmt: skip
    assert ["--input", PIPELINE_CONFIG["input_uri"]] == load["Args"][6:8]  # exactly the object, not its folder
    assert spark["Args"][:4] == [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        PIPELINE_CONFIG["steps_uri"] + "sort_by_spending_score.py",
    ]
    assert spark["Args"][6:8] == ["--output", PIPELINE_CONFIG["output_uri"]]


@pytest.mark.parametrize("sensor_mode", ["deferrable", "reschedule"], indirect=True)
def test_dag_2_fails_on_a_failed_step_and_adds_no_further_step(run_dag_2, sensor_mode, caplog):
    dag_run, steps = run_dag_2("FAILED")

    assert dag_run.state == "failed"
    assert triggers_run(caplog) == (1 if sensor_mode == "deferrable" else 0)  # the trigger saw the failure
    assert task_states(dag_run) == {
        "load_into_hive": "success",
        "wait_for_load_into_hive": "failed",
        "sort_and_write_parquet": "upstream_failed",
        "wait_for_sort_and_write_parquet": "upstream_failed",
    }
    assert [s["Name"] for s in steps] == ["load_customers_into_hive"]


def test_job_flow_with_core_nodes_is_valid_run_job_flow_input(aws):
    from emr_pipeline.job_flow import job_flow_overrides

    overrides = job_flow_overrides({**PIPELINE_CONFIG, "core_instance_count": 2}, "manual__2026-11-23T20:00:00+00:00")
    cluster_id = emr().run_job_flow(**overrides)["JobFlowId"]  # botocore validates the request shape

    groups = emr().list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]
    assert sorted((g["InstanceGroupType"], g["RequestedInstanceCount"]) for g in groups) == [("CORE", 2), ("MASTER", 1)]


SORT_JOB_POINTER = {
    "run": "runs/20261201T000000000Z-0123abcd/", "rows": 200, "sorted_by": ["spending_score", "customer_id"],
    "columns": [{"name": n, "type": t} for n, t in [("customer_id", "int"), ("gender", "string"), ("age", "int"),
                                                     ("annual_income_k_usd", "int"), ("spending_score", "int")]],
}  # fmt: skip


def put_object(uri: str, body: str) -> None:
    import boto3

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", region_name="us-east-1")
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"))


def test_pointer_name_matches_the_sort_job():
    from emr_pipeline.diagnosis import LATEST_POINTER

    from ...pipeline_support import EMR_STEPS

    assert f"LATEST = {LATEST_POINTER!r}".replace("'", '"') in (EMR_STEPS / "sort_by_spending_score.py").read_text()


def test_success_mail_states_the_published_run_and_output_schema(run_dag_1, aws):
    def publish(conf):  # what the sort job writes last
        put_object(conf["output_uri"] + "_LATEST", json.dumps(SORT_JOB_POINTER))

    dag_run, _ = run_dag_1("success", prepare=publish)

    assert dag_run.state == "success"
    _, body = only_mail(aws)
    output = PIPELINE_CONFIG["output_uri"]
    assert (
        f"published run: {output}runs/20261201T000000000Z-0123abcd/, 200 rows; readers follow {output}_LATEST" in body
    )
    assert "Parquet, sorted by spending_score, customer_id:<br>customer_id int<br>gender string<br>age int<br>" in body
    assert "annual_income_k_usd int<br>spending_score int<br>" in body


def test_failure_mail_gives_the_steps_error_line_and_emrs_failure_details(run_dag_1, aws):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    from rehearsal.aws import emr_state

    log_file = "s3://logs-bucket/emr/j-X/steps/s-X/stderr"

    def fail_the_load(conf):  # the load step failed on bad input, as the job and EMR report it
        cluster_id = conf["cluster_id"]
        [step_id] = emr().add_job_flow_steps(JobFlowId=cluster_id, Steps=[{
            "Name": "load_customers_into_hive", "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "x.py"]},
        }])["StepIds"]  # fmt: skip
        cluster = emr_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].clusters[cluster_id]
        [step] = [s for s in cluster.steps if s.id == step_id]
        failure = {
            "Reason": "Unknown Error.",
            "Message": f"Step {step_id} failed with exit status 2",
            "LogFile": log_file,
        }
        emr_state.finish_step(step, "FAILED", reason="Unknown Error.", failure=failure)
        put_object(
            f"{PIPELINE_CONFIG['log_uri']}{cluster_id}/pipeline-errors/load_customers_into_hive.txt",
            "error: line 42: unbalanced quote (a quoted field must end with a quote before the line ends)\n",
        )

    dag_run, _ = run_dag_1("failed", prepare=fail_the_load)

    assert dag_run.state == "failed"
    _, body = only_mail(aws)
    assert "load_customers_into_hive: error: line 42: unbalanced quote" in body
    assert "FAILED: Unknown Error. - Step " in body and "failed with exit status 2 (log: " + log_file + ")" in body
