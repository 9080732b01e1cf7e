"""Paths, the test configuration and helpers shared by the pipeline tests.

A uniquely named module (not conftest) so imports cannot pick up another folder's conftest.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "airflow_assets" / "dags"
EMR_STEPS = REPO / "emr_steps"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rehearsal.dataset import DATASET  # noqa: E402  (../shared/data, else sample_data/)

PIPELINE_CONFIG = {
    "region": "us-east-1",
    "release_label": "emr-7.10.0",
    "service_role": "AirflowEmr-ServiceRole",
    "job_flow_role": "AirflowEmr-InstanceProfile",
    "subnet_id": "subnet-0123456789abcdef0",
    "emr_managed_primary_sg": "sg-0000000000000000a",
    "emr_managed_core_sg": "sg-0000000000000000b",
    "service_access_sg": "sg-0000000000000000c",
    "log_uri": "s3://logs-bucket/emr/",
    "steps_uri": "s3://code-bucket/emr_steps/",
    "input_uri": "s3://data-bucket/input/mall_customers/Mall_Customers.csv",
    "output_uri": "s3://data-bucket/output/customers_by_spending_score/",
    "hive_database": "mall",
    "primary_instance_type": "m5.xlarge",
    "core_instance_type": "m5.xlarge",
    "core_instance_count": 0,
    "idle_timeout_seconds": 3600,
    "cluster_tags": {"for-use-with-amazon-emr-managed-policies": "true", "airflow-emr-stack": "AirflowEmr-dev"},
    "sender_email": "airflow@example.com",
    "alert_email": "ops@example.com",
    "poll_interval_seconds": 1,
}

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
            {"customer_id": int(r[0]), "gender": r[1], "age": int(r[2]), "annual_income_k_usd": int(r[3]), "spending_score": int(r[4])}
            for r in reader
        ]


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module
