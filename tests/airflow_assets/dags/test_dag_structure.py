"""DAG import, structure and the rendering of every templated field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ...pipeline_support import DAGS_FOLDER, PIPELINE_CONFIG, REPO_ROOT

DAG_1_CHAIN = ["create_emr_cluster", "trigger_dag_2", "wait_for_dag_2", "terminate_emr_cluster", "email_outcome"]
DAG_2_CHAIN = ["load_into_hive", "wait_for_load_into_hive", "sort_and_write_parquet", "wait_for_sort_and_write_parquet"]
RUN_ID = "manual__2026-11-23T20:00:00+00:00"


def test_dagbag_imports_both_dags_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"dag_1", "dag_2"}


def test_dag_import_needs_no_variable(monkeypatch):
    """Parsing must not need the Variable (read at run time; only run_timeout_seconds at parse time, with a default)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.delenv("AIRFLOW_VAR_EMR_PIPELINE")
    bag = BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {} and set(bag.dag_ids) == {"dag_1", "dag_2"}


@pytest.mark.parametrize(("dag_id", "chain"), [("dag_1", DAG_1_CHAIN), ("dag_2", DAG_2_CHAIN)])
def test_task_chain(dagbag, dag_id, chain):
    dag = dagbag.dags[dag_id]
    assert [t.task_id for t in dag.topological_sort()] == chain
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert upstream in dag.get_task(downstream).upstream_task_ids


def test_dag_1_teardown_and_trigger_rules(dagbag):
    dag = dagbag.dags["dag_1"]
    create, terminate, mail = (
        dag.get_task(t) for t in ("create_emr_cluster", "terminate_emr_cluster", "email_outcome")
    )
    assert create.is_setup and terminate.is_teardown
    assert terminate.trigger_rule == "all_done_setup_success"
    assert create.task_id in terminate.upstream_task_ids
    assert mail.trigger_rule == "all_done"
    assert create.emr_conn_id is None and create.aws_conn_id == "aws_default"
    assert dag.dag_display_name.startswith("DAG_1")


SENSORS = [
    ("dag_1", "wait_for_dag_2"),
    ("dag_2", "wait_for_load_into_hive"),
    ("dag_2", "wait_for_sort_and_write_parquet"),
]


def parsed(monkeypatch, **settings):
    """Both DAGs as the dag-processor parses them with ``settings`` in the Variable (parse-time keys)."""
    import json

    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setenv("AIRFLOW_VAR_EMR_PIPELINE", json.dumps({**PIPELINE_CONFIG, **settings}))
    bag = BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {}
    return bag.dags


def test_sensors_do_not_hold_worker_slots_and_fail_fast(dagbag):
    """The test Variable sets no sensor_mode: the default, deferrable, is what the parsed sensors declare."""
    from emr_pipeline.variable import DEFAULTS

    assert DEFAULTS["sensor_mode"] == "deferrable"
    wait = dagbag.dags["dag_1"].get_task("wait_for_dag_2")
    assert wait.external_dag_id == "dag_2" and not wait.external_task_ids  # the whole run, not a task
    assert wait.failed_states == ["failed"] and wait.allowed_states == ["success"]
    for dag_id, task_id in SENSORS:
        sensor = dagbag.dags[dag_id].get_task(task_id)
        assert sensor.deferrable is True and sensor.retries == 0


def test_create_is_never_retried(dagbag):
    """A retry after RunJobFlow succeeded would orphan the first cluster: the teardown sees one XCom."""
    dag = dagbag.dags["dag_1"]
    assert dag.default_args["retries"] == 1  # so the override below is what keeps create at one try
    assert dag.get_task("create_emr_cluster").retries == 0


@pytest.mark.parametrize(
    "settings, deferrable, mode",
    [
        ({}, True, "poke"),  # a deferrable sensor never consults its mode
        ({"sensor_mode": "reschedule"}, False, "reschedule"),
        ({"sensor_mode": "poke"}, False, "poke"),
    ],
)
def test_sensors_declare_the_variables_way_of_waiting(monkeypatch, settings, deferrable, mode):
    dags = parsed(monkeypatch, **settings, poll_interval_seconds=30, sensor_timeout_seconds=7200)
    for dag_id, task_id in SENSORS:
        sensor = dags[dag_id].get_task(task_id)
        assert (sensor.deferrable, sensor.mode, sensor.poke_interval) == (deferrable, mode, 30)
    for task_id in ("wait_for_load_into_hive", "wait_for_sort_and_write_parquet"):
        sensor = dags["dag_2"].get_task(task_id)
        assert sensor.timeout == 7200
        # Deferred, the step sensor's trigger times out after max_attempts polls of one interval each.
        assert sensor.max_attempts * sensor.poke_interval == 7200


def test_trigger_is_never_retried(dagbag):
    """A retry after the dag_2 run was created would start a second dag_2 on the same cluster."""
    assert dagbag.dags["dag_1"].get_task("trigger_dag_2").retries == 0


@pytest.mark.parametrize("timeout", [600, 7200, 21600])
def test_wait_for_dag_2_outlasts_dag_2s_worst_case(monkeypatch, timeout):
    """dag_2 may take each of its step sensors' full timeouts, one after the other."""
    dags = parsed(monkeypatch, sensor_timeout_seconds=timeout)
    step_sensors = [t for t in dags["dag_2"].tasks if t.task_id.startswith("wait_for_")]
    assert len(step_sensors) == 2
    assert dags["dag_1"].get_task("wait_for_dag_2").timeout > sum(sensor.timeout for sensor in step_sensors)


@pytest.mark.parametrize(
    ("settings", "seconds"),
    [
        ({}, 2 * 21600 + 3600),  # no key: longer than wait_for_dag_2's limit for the default sensor timeout
        ({"sensor_timeout_seconds": 600}, 2 * 600 + 3600),
        ({"run_timeout_seconds": 90}, 90),
    ],
)
def test_dagrun_timeout_is_the_variables_when_parsed(monkeypatch, settings, seconds):
    import json
    from datetime import timedelta

    from airflow.dag_processing.dagbag import BundleDagBag

    config = {k: v for k, v in PIPELINE_CONFIG.items() if k not in ("sensor_timeout_seconds", "run_timeout_seconds")}
    monkeypatch.setenv("AIRFLOW_VAR_EMR_PIPELINE", json.dumps({**config, **settings}))
    bag = BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {}
    assert bag.dags["dag_1"].dagrun_timeout == timedelta(seconds=seconds)


@pytest.mark.parametrize(("settings", "seconds"), [({}, 60), ({"retry_delay_seconds": 5}, 5)])
def test_retried_tasks_wait_the_variables_retry_delay_when_parsed(monkeypatch, settings, seconds):
    import json
    from datetime import timedelta

    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setenv("AIRFLOW_VAR_EMR_PIPELINE", json.dumps({**PIPELINE_CONFIG, **settings}))
    bag = BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert bag.import_errors == {}
    for dag in bag.dags.values():
        assert {task.task_id: task.retry_delay for task in dag.tasks} == dict.fromkeys(
            dag.task_ids, timedelta(seconds=seconds)
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"run_timeout_seconds": "1h"}, "run_timeout_seconds must be a positive number of seconds, not '1h'"),
        ({"retry_delay_seconds": 0}, "retry_delay_seconds must be a positive number of seconds, not 0"),
        ({"sensor_mode": "async"}, "sensor_mode must be one of ['deferrable', 'reschedule', 'poke'], not 'async'"),
    ],
)
def test_a_bad_parse_time_key_is_an_import_error_naming_it(monkeypatch, settings, message):
    """Both DAG files read the parse-time keys (emr_pipeline.config.dag_settings), so both name the problem."""
    import json

    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setenv("AIRFLOW_VAR_EMR_PIPELINE", json.dumps({**PIPELINE_CONFIG, **settings}))
    bag = BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER)
    assert sorted(Path(path).name for path in bag.import_errors) == ["dag_1.py", "dag_2.py"]
    for error in bag.import_errors.values():
        assert message in error


def test_sensor_targets_the_logical_date_the_trigger_published(dagbag):
    from emr_pipeline.operators import TRIGGERED_LOGICAL_DATE

    wait = dagbag.dags["dag_1"].get_task("wait_for_dag_2")
    published = "2026-11-23T20:01:02.345678+00:00"

    class TriggerXCom:
        def xcom_pull(self, task_ids, key):
            assert (task_ids, key) == ("trigger_dag_2", TRIGGERED_LOGICAL_DATE)
            return published

    context = {"logical_date": None, "dag_run": None, "ti": TriggerXCom()}
    context["dag_run"] = type("Run", (), {"run_after": datetime(2026, 11, 23, tzinfo=UTC)})()
    assert wait._get_dttm_filter(context) == [datetime.fromisoformat(published)]


def test_no_aws_sdk_in_product_code():
    pattern = re.compile(r"^\s*(import|from)\s+(boto3|botocore)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for folder in ("stacks", "airflow_assets", "emr_steps")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


class FakeTaskInstance:
    try_number = 2

    def __init__(self, xcoms):
        self.xcoms = xcoms

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        return self.xcoms[(task_ids, key)]


def render(dag, task_id, xcoms=None, params=None):
    """Render a task of a freshly parsed copy of ``dag`` (rendering mutates the task in place)."""
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.sdk.execution_time.context import VariableAccessor

    dag = BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER).dags[dag.dag_id]
    task = dag.get_task(task_id)
    context = {
        "run_id": RUN_ID,
        "params": {"input_uri": None, "output_uri": None, **(params or {})},
        "ti": FakeTaskInstance(xcoms or {}),
        "var": {"json": VariableAccessor(deserialize_json=True), "value": VariableAccessor(deserialize_json=False)},
    }
    context["task_instance"] = context["ti"]
    task.render_template_fields(context, jinja_env=dag.get_template_env())
    return task


def test_create_renders_a_complete_job_flow(dagbag):
    task = render(dagbag.dags["dag_1"], "create_emr_cluster")
    assert task.region_name == "us-east-1" and task.aws_conn_id == "aws_default"
    overrides = task.job_flow_overrides
    assert isinstance(overrides, dict)  # rendered natively, not a literal for the operator to parse
    assert overrides["Name"] == f"dag_1-{RUN_ID}"
    assert overrides["ReleaseLabel"] == "emr-7.10.0"
    assert [a["Name"] for a in overrides["Applications"]] == ["Hadoop", "Hive", "Spark"]
    instances = overrides["Instances"]
    assert instances["KeepJobFlowAliveWhenNoSteps"] is True
    assert [g["InstanceRole"] for g in instances["InstanceGroups"]] == ["MASTER"]
    assert instances["InstanceGroups"][0]["InstanceCount"] == 1
    assert instances["Ec2SubnetId"] == PIPELINE_CONFIG["subnet_id"]
    assert instances["EmrManagedMasterSecurityGroup"] == PIPELINE_CONFIG["emr_managed_primary_sg"]
    assert instances["EmrManagedSlaveSecurityGroup"] == PIPELINE_CONFIG["emr_managed_core_sg"]
    assert instances["ServiceAccessSecurityGroup"] == PIPELINE_CONFIG["service_access_sg"]
    assert overrides["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert overrides["LogUri"] == PIPELINE_CONFIG["log_uri"]
    assert (overrides["ServiceRole"], overrides["JobFlowRole"]) == (
        "AirflowEmr-ServiceRole",
        "AirflowEmr-InstanceProfile",
    )
    assert {"Key": "airflow:run_id", "Value": RUN_ID} in overrides["Tags"]


def test_core_group_follows_configuration():
    from emr_pipeline.job_flow import instance_groups
    from emr_pipeline.variable import EmrPipelineVariable

    groups = instance_groups(EmrPipelineVariable.from_dict({**PIPELINE_CONFIG, "core_instance_count": 2}))
    assert [(g["InstanceRole"], g["InstanceCount"]) for g in groups] == [("MASTER", 1), ("CORE", 2)]


def test_trigger_renders_fresh_run_id_and_conf(dagbag):
    xcoms = {("create_emr_cluster", "return_value"): "j-ABCDEF123456"}
    task = render(dagbag.dags["dag_1"], "trigger_dag_2", xcoms, params={"output_uri": "s3://elsewhere/out/"})
    assert task.trigger_dag_id == "dag_2"
    assert task.trigger_run_id == f"dag_1__{RUN_ID}__try2"
    assert task.conf == {
        "cluster_id": "j-ABCDEF123456",
        "input_uri": PIPELINE_CONFIG["input_uri"],
        "output_uri": "s3://elsewhere/out/",
    }
    assert task.reset_dag_run is False and task.wait_for_completion is False


def test_terminate_and_mail_render(dagbag):
    dag = dagbag.dags["dag_1"]
    terminate = render(dag, "terminate_emr_cluster", {("create_emr_cluster", "return_value"): "j-ABCDEF123456"})
    assert terminate.job_flow_id == "j-ABCDEF123456" and terminate.region_name == "us-east-1"
    mail = render(dag, "email_outcome")
    assert mail.op_kwargs == {"output_uri": PIPELINE_CONFIG["output_uri"]}


def test_dag_2_steps_render_to_conventional_commands(dagbag):
    dag = dagbag.dags["dag_2"]
    params = {"cluster_id": "j-ABCDEF123456", "input_uri": "s3://data/in/mall/Mall_Customers.csv"}
    load = render(dag, "load_into_hive", params=params)
    assert load.job_flow_id == "j-ABCDEF123456" and load.region_name == "us-east-1"
    [step] = load.steps
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    assert step["HadoopJarStep"]["Args"] == [
        "spark-submit", "--deploy-mode", "cluster",
        "--py-files", "s3://code-bucket/emr_steps/sort_by_spending_score.py", "s3://code-bucket/emr_steps/load_customers.py",
        "--input", "s3://data/in/mall/Mall_Customers.csv", "--database", "mall",
        "--failure-summary", "s3://logs-bucket/emr/j-ABCDEF123456/pipeline-errors/load_customers_into_hive.txt",
    ]  # fmt: skip
    sort = render(dag, "sort_and_write_parquet", params=params)
    assert sort.steps[0]["HadoopJarStep"]["Args"] == [
        "spark-submit", "--deploy-mode", "cluster", "s3://code-bucket/emr_steps/sort_by_spending_score.py",
        "--source-table", "mall.customers", "--output", PIPELINE_CONFIG["output_uri"],
        "--failure-summary", "s3://logs-bucket/emr/j-ABCDEF123456/pipeline-errors/sort_customers_by_spending_score.txt",
    ]  # fmt: skip
    for task_id, add_task in (
        ("wait_for_load_into_hive", "load_into_hive"),
        ("wait_for_sort_and_write_parquet", "sort_and_write_parquet"),
    ):
        sensor = render(dag, task_id, {(add_task, "return_value"): ["s-STEP1"]}, params=params)
        assert (sensor.job_flow_id, sensor.step_id) == ("j-ABCDEF123456", "s-STEP1")


@pytest.mark.parametrize(
    ("task_id", "params", "message"),
    [
        ("load_into_hive", {"input_uri": "s3://bucket/Mall_Customers.csv"}, "must name a CSV object inside a prefix"),
        ("load_into_hive", {"input_uri": "s3://bucket/data/"}, "must name a CSV object inside a prefix"),
        ("load_into_hive", {"input_uri": "Mall_Customers.csv"}, "is not an s3://bucket/key URI"),
        ("sort_and_write_parquet", {"output_uri": "s3://bucket/"}, "is a bucket root"),
        ("sort_and_write_parquet", {"output_uri": "s3://bucket"}, "is a bucket root"),
    ],
)
def test_unusable_uris_fail_the_step_task_with_a_clear_error(dagbag, task_id, params, message):
    with pytest.raises(ValueError, match=message):
        render(dagbag.dags["dag_2"], task_id, params={"cluster_id": "j-ABCDEF123456", **params})


def test_missing_configuration_is_named():
    from emr_pipeline.job_flow import job_flow_overrides

    broken = {k: v for k, v in PIPELINE_CONFIG.items() if k not in {"subnet_id", "log_uri"}}
    with pytest.raises(ValueError, match="'emr_pipeline' lacks log_uri, subnet_id"):
        job_flow_overrides(broken, RUN_ID)


def test_a_paused_dag_2_cannot_stall_dag_1(dagbag):
    assert dagbag.dags["dag_2"].is_paused_upon_creation is False
    assert dagbag.dags["dag_1"].get_task("trigger_dag_2").fail_when_dag_is_paused is True


XCOMS = {
    ("create_emr_cluster", "return_value"): "j-ABCDEF123456",
    ("load_into_hive", "return_value"): ["s-LOAD"],
    ("sort_and_write_parquet", "return_value"): ["s-SORT"],
}


@pytest.mark.parametrize("dag_id", ["dag_1", "dag_2"])
def test_every_templated_field_renders_completely(dagbag, dag_id):
    for task_id in dagbag.dags[dag_id].task_ids:
        task = render(dagbag.dags[dag_id], task_id, XCOMS, params={"cluster_id": "j-ABCDEF123456"})
        for field in task.template_fields:
            rendered = repr(getattr(task, field))
            assert "{{" not in rendered and "{%" not in rendered, (task_id, field, rendered)
