"""Real Spark runs of EMR steps through the local runner (a few JVM starts: keep this module small)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from stacks.config import REPO_ROOT

from .emulator_support import DATASET, cluster_state, command_step, start_cluster, wait_for, wait_for_steps

SPARK_TIMEOUT = 300


def output_prefix(aws) -> str:
    """Under the pipeline's output prefix: the only place the EMR instance role may write."""
    return aws.pipeline_config["output_uri"] + "emulator-sorted/"


def input_prefix(aws) -> str:
    return aws.pipeline_config["input_uri"].rsplit("/", 1)[0] + "/"


def add_steps(aws, cluster_id, steps):
    return aws.client("emr").add_job_flow_steps(JobFlowId=cluster_id, Steps=steps)["StepIds"]


def test_hive_then_pyspark_steps_write_sorted_parquet_to_s3(local_aws):
    output = output_prefix(local_aws)
    steps_uri = local_aws.pipeline_config["steps_uri"]
    stale = io.BytesIO()
    pq.write_table(pa.table({"customer_id": [0], "score": [0]}), stale)
    local_aws.upload_bytes(stale.getvalue(), output + "part-99999-stale.snappy.parquet")

    cluster_id = start_cluster(local_aws)
    ids = add_steps(
        local_aws,
        cluster_id,
        [
            command_step(
                "load",
                [
                    "hive",
                    "-f",
                    steps_uri + "create_customers.hql",
                    "--hivevar",
                    f"input_location={input_prefix(local_aws)}",
                    "--hivevar",
                    "database=emu",
                ],
            ),
            command_step(
                "sort",
                ["spark-submit", "--deploy-mode", "cluster", steps_uri + "write_sorted.py", "emu.customers", output],
            ),
        ],
    )
    steps = wait_for_steps(local_aws, cluster_id, ids, timeout=SPARK_TIMEOUT)

    assert [step["Status"]["State"] for step in steps] == ["COMPLETED", "COMPLETED"], steps
    assert "FailureDetails" not in steps[1]["Status"]
    keys = local_aws.list_keys(output)
    parts = [key for key in keys if key.endswith(".parquet")]
    assert keys == sorted([output.split("/", 3)[3] + "_SUCCESS", *parts]), "exactly what Spark wrote, no .crc files"
    assert len(parts) == 1 and "stale" not in parts[0], "overwrite removed the previous part from S3"
    table = local_aws.read_parquet(output)
    scores = table.column("score").to_pylist()
    assert table.num_rows == 200 and scores == sorted(scores)
    assert sorted(table.column("customer_id").to_pylist()) == list(range(1, 201))
    # The steps' scratch (Hive's per-session `<id>_resources` directory) stays on the emulated node,
    # not in the machine's /tmp, where it would outlive the rehearsal.
    assert list((local_aws.workdir / "emr" / cluster_id / "tmp").glob("*_resources"))

    log_keys = local_aws.list_keys(f"{local_aws.pipeline_config['log_uri']}{cluster_id}/steps/")
    for step_id in ids:
        for name in ("stdout", "stderr", "controller"):
            assert f"emr/{cluster_id}/steps/{step_id}/{name}" in log_keys
    driver_stdout = (
        local_aws.workdir
        / "emr"
        / cluster_id
        / "containers"
        / f"application_{ids[1].replace('-', '_')}"
        / "driver"
        / "stdout"
    )
    assert "wrote 200 rows" in driver_stdout.read_text()  # --deploy-mode cluster: the container's log
    cluster_home = local_aws.workdir / "emr" / cluster_id
    assert (cluster_home / "metastore_db").is_dir() and (cluster_home / "warehouse" / "emu.db").is_dir()
    assert (cluster_home / "derby.log").is_file()
    assert wait_for(lambda: cluster_state(local_aws, cluster_id)["State"] == "WAITING", timeout=10)


def test_failing_step_reports_its_exit_status_and_error_and_cancels_the_next(local_aws):
    output = output_prefix(local_aws)
    steps_uri = local_aws.pipeline_config["steps_uri"]
    cluster_id = start_cluster(local_aws)
    ids = add_steps(
        local_aws,
        cluster_id,
        [
            command_step("fail", ["spark-submit", steps_uri + "fail.py"], "CANCEL_AND_WAIT"),
            command_step("next", ["spark-submit", steps_uri + "write_sorted.py", "emu.customers", output]),
        ],
    )
    failed, cancelled = wait_for_steps(local_aws, cluster_id, ids, timeout=SPARK_TIMEOUT)

    assert failed["Status"]["State"] == "FAILED"
    details = failed["Status"]["FailureDetails"]
    assert details["Reason"] == "error: fixture failure on purpose"
    assert "exit status 3" in details["Message"]
    assert details["LogFile"].endswith(f"{cluster_id}/steps/{ids[0]}/stderr")
    assert cancelled["Status"]["State"] == "CANCELLED"
    assert wait_for(lambda: cluster_state(local_aws, cluster_id)["State"] == "WAITING", timeout=10)


def test_cluster_deploy_mode_sends_the_drivers_output_to_the_container_log_not_the_step(local_aws):
    """As on EMR: with --deploy-mode cluster the driver's error line is in the YARN container's log;
    the step's stderr and FailureDetails only know that the application failed."""
    steps_uri = local_aws.pipeline_config["steps_uri"]
    cluster_id = start_cluster(local_aws)
    [step_id] = add_steps(
        local_aws,
        cluster_id,
        [command_step("fail", ["spark-submit", "--deploy-mode", "cluster", steps_uri + "fail.py"], "CONTINUE")],
    )
    [failed] = wait_for_steps(local_aws, cluster_id, [step_id], timeout=SPARK_TIMEOUT)

    details = failed["Status"]["FailureDetails"]
    application = f"application_{step_id.replace('-', '_')}"
    assert (
        details["Reason"]
        == f'Exception in thread "main" org.apache.spark.SparkException: Application {application} finished with failed status'
    )
    assert "exit status 1" in details["Message"]
    assert "fixture failure" not in (local_aws.step_log_dir(cluster_id, step_id) / "stderr").read_text()
    container_log = f"{local_aws.pipeline_config['log_uri']}{cluster_id}/containers/{application}/driver/"
    keys = local_aws.list_keys(container_log)
    driver_output = b"".join(
        local_aws.client("s3").get_object(Bucket=container_log.split("/")[2], Key=key)["Body"].read() for key in keys
    )
    assert b"error: fixture failure on purpose" in driver_output


def test_terminating_the_cluster_kills_the_running_step_and_cancels_pending_ones(local_aws, tmp_path):
    steps_uri = local_aws.pipeline_config["steps_uri"]
    pid_file = tmp_path / "sleep.pid"
    cluster_id = start_cluster(local_aws)
    ids = add_steps(
        local_aws,
        cluster_id,
        [
            command_step("long", ["spark-submit", steps_uri + "sleep.py", str(pid_file)]),
            command_step("pending", ["spark-submit", steps_uri + "fail.py"]),
        ],
    )
    wait_for(pid_file.exists, timeout=SPARK_TIMEOUT, what="the long step to start")
    pid = int(wait_for(lambda: pid_file.read_text().strip(), timeout=10))
    assert cluster_state(local_aws, cluster_id)["State"] == "RUNNING"

    local_aws.client("emr").terminate_job_flows(JobFlowIds=[cluster_id])
    running, pending = wait_for_steps(local_aws, cluster_id, ids, timeout=60)

    assert running["Status"]["State"] == "CANCELLED"
    assert "terminated" in running["Status"]["StateChangeReason"]["Message"]
    assert pending["Status"]["State"] == "CANCELLED"
    assert cluster_state(local_aws, cluster_id)["State"] == "TERMINATED"

    def process_gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert wait_for(process_gone, timeout=30, what=f"step process {pid} to exit")


REAL_STEPS = REPO_ROOT / "emr_steps"


def test_the_real_emr_steps_sort_the_real_dataset_on_the_releases_spark_line(local_aws):
    """dag_2's steps on emr_steps/ and the real CSV, with another CSV beside it that must be ignored."""
    config = local_aws.pipeline_config
    steps_uri, errors = config["steps_uri"], f"{config['log_uri']}pipeline-errors/"
    for name in ("load_customers.py", "sort_by_spending_score.py"):
        local_aws.upload(REAL_STEPS / name, steps_uri + name)
    local_aws.upload(DATASET, config["input_uri"])
    local_aws.upload_bytes(b"CustomerID,Genre\n999,Other\n", input_prefix(local_aws) + "another.csv")
    output = config["output_uri"]

    cluster_id = start_cluster(local_aws)
    ids = add_steps(
        local_aws,
        cluster_id,
        [  # the shapes tests/airflow_assets/dags/test_dag_structure.py pins for dag_2
            command_step(
                "load_customers_into_hive",
                ["spark-submit", "--deploy-mode", "cluster", "--py-files", steps_uri + "sort_by_spending_score.py",
                 steps_uri + "load_customers.py", "--input", config["input_uri"], "--database", config["hive_database"],
                 "--failure-summary", errors + "load.txt"],
                "CONTINUE",
            ),
            command_step(
                "sort_customers_by_spending_score",
                ["spark-submit", "--deploy-mode", "cluster", steps_uri + "sort_by_spending_score.py",
                 "--source-table", f"{config['hive_database']}.customers", "--output", output,
                 "--failure-summary", errors + "sort.txt"],
                "CONTINUE",
            ),
        ],
    )  # fmt: skip
    steps = wait_for_steps(local_aws, cluster_id, ids, timeout=SPARK_TIMEOUT)
    assert [step["Status"]["State"] for step in steps] == ["COMPLETED", "COMPLETED"], [step["Status"] for step in steps]
    for step_id in ids:  # run by the Spark line of the cluster's release (emr-7.x: 3.5, .venv-emr)
        controller = (local_aws.step_log_dir(cluster_id, step_id) / "controller").read_text()
        assert ".venv-emr/" in controller and "/pyspark/bin/spark-submit" in controller

    table = local_aws.read_published(output)
    rows = list(zip(table.column("spending_score").to_pylist(), table.column("customer_id").to_pylist(), strict=True))
    assert table.num_rows == 200, "exactly the named object's rows, not another.csv beside it"
    assert rows == sorted(rows)
    expected_ids = [int(line.split(",")[0]) for line in Path(DATASET).read_text().splitlines()[1:] if line.strip()]
    assert sorted(table.column("customer_id").to_pylist()) == sorted(expected_ids)
    keys = local_aws.list_keys(output)
    prefix = output.split("/", 3)[3]
    assert all(key.startswith(prefix) for key in keys) and f"{prefix}_LATEST" in keys
