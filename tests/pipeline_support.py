"""Paths, the test configuration and helpers shared by the pipeline tests.

A uniquely named module (not conftest) so imports cannot pick up another folder's conftest.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from airflow_assets.dags.emr_pipeline.variable import EmrPipelineVariable
from rehearsal.aws.spark_env import SparkEnvironment, find_spark_environment
from rehearsal.dataset import DATASET  # ../shared/data, else sample_data/
from stacks.config import REPO_ROOT

DAGS_FOLDER = REPO_ROOT / "airflow_assets" / "dags"
EMR_STEPS = REPO_ROOT / "emr_steps"

PIPELINE_CONFIG = EmrPipelineVariable(
    region="us-east-1",
    release_label="emr-7.10.0",
    service_role="AirflowEmr-ServiceRole",
    job_flow_role="AirflowEmr-InstanceProfile",
    subnet_id="subnet-0123456789abcdef0",
    emr_managed_primary_sg="sg-0000000000000000a",
    emr_managed_core_sg="sg-0000000000000000b",
    service_access_sg="sg-0000000000000000c",
    log_uri="s3://logs-bucket/emr/",
    steps_uri="s3://code-bucket/emr_steps/",
    input_uri="s3://data-bucket/input/mall_customers/Mall_Customers.csv",
    output_uri="s3://data-bucket/output/customers_by_spending_score/",
    hive_database="mall",
    primary_instance_type="m5.xlarge",
    core_instance_type="m5.xlarge",
    core_instance_count=0,
    idle_timeout_seconds=3600,
    cluster_tags={"for-use-with-amazon-emr-managed-policies": "true", "airflow-emr-stack": "AirflowEmr-dev"},
    sender_email="airflow@example.com",
    alert_email="ops@example.com",
    poll_interval_seconds=1,
).to_dict()

HEADER = "CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)"
EXPECTED_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int32()),
        ("gender", pa.string()),
        ("age", pa.int32()),
        ("annual_income_k_usd", pa.int32()),
        ("spending_score", pa.int32()),
    ]
)


def dataset_rows() -> list[dict]:
    with DATASET.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader)
        return [
            {
                "customer_id": int(r[0]),
                "gender": r[1],
                "age": int(r[2]),
                "annual_income_k_usd": int(r[3]),
                "spending_score": int(r[4]),
            }
            for r in reader
        ]


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


# The Spark line every EMR step test runs on: the configured EMR release's (emr-7.x: Spark 3.5, its
# interpreter .venv-emr from `make venv`), what EMR runs. The project's own pyspark 4 is not a line any
# configured release runs; test_spark_api.py keeps the steps off its newer API in seconds instead.
SPARK_LINES = {PIPELINE_CONFIG["release_label"]: PIPELINE_CONFIG["release_label"]}
SUBMIT_CONF = [
    "--master", "local[2]",
    "--conf", "spark.ui.enabled=false",
    "--conf", "spark.sql.shuffle.partitions=2",
    "--conf", "spark.driver.memory=1g",
]  # fmt: skip


def spark_environment(line: str) -> SparkEnvironment:
    return find_spark_environment(SPARK_LINES[line])


def spark_tool(
    spark: SparkEnvironment, tool: str, *args: str, cwd: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``spark-submit``/``spark-sql`` of that Spark line, its Python as the driver's and workers'."""
    env = spark.process_env(dict(os.environ))
    return subprocess.run(
        [str(spark.spark_home / "bin" / tool), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_job_batch(spark: SparkEnvironment, job: Path, cases: list[dict], workdir: Path) -> dict[str, list[dict]]:
    """All ``cases`` of ``job`` in one spark-submit (tests/emr_steps/job_batch.py); results by case id."""
    cases_file, results_file = workdir / "cases.json", workdir / "results.json"
    cases_file.write_text(json.dumps(cases))
    driver = Path(__file__).parent / "emr_steps" / "job_batch.py"
    result = spark_tool(
        spark,
        "spark-submit",
        *SUBMIT_CONF,
        str(driver),
        str(job),
        str(cases_file),
        str(results_file),
        cwd=workdir,
        timeout=600,
    )
    assert result.returncode == 0 and results_file.is_file(), (result.stdout + result.stderr)[-4000:]
    return json.loads(results_file.read_text())
