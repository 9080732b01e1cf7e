"""Fixtures for the rehearsal tests. The cluster deployment is started once per module and shared by the drills."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rehearsal.aws import seed
from rehearsal.nodes import RehearsalHost, cluster_nodes
from rehearsal.run import Rehearsal
from stacks import s3_layout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three nodes, MariaDB, Redis, Celery, and a second scheduler so the scheduler drill has a survivor."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with Rehearsal("cluster", workdir=tmp_path_factory.mktemp("cluster"), scheduler_count=2) as rehearsal:
        yield rehearsal


SECRET_KEYS = (
    "FERNET_KEY_SECRET_ID",
    "JWT_SECRET_SECRET_ID",
    "API_SECRET_KEY_SECRET_ID",
    "ADMIN_PASSWORD_SECRET_ID",
    "FLOWER_PASSWORD_SECRET_ID",
    "REDIS_AUTH_SECRET_ID",
    "DB_SECRET_ID",
)


class SeededAws:
    """What cluster_nodes reads of the emulator (the seed's names and ARNs), without starting one."""

    region = "us-west-2"
    account_id = "123456789012"
    endpoint_url = "http://127.0.0.1:9"
    pipeline_config = {
        "service_role": seed.SERVICE_ROLE,
        "job_flow_role": seed.INSTANCE_PROFILE,
        "subnet_id": "subnet-0a1b2c3d",
        "emr_managed_primary_sg": "sg-0primary",
        "emr_managed_core_sg": "sg-0core",
        "service_access_sg": "sg-0access",
        "log_uri": f"s3://{seed.LOGS_BUCKET}/{s3_layout.EMR_LOG_PREFIX}",
        "steps_uri": f"s3://{seed.CODE_BUCKET}/{s3_layout.EMR_STEPS_PREFIX}",
        "input_uri": f"s3://{seed.DATA_BUCKET}/{s3_layout.INPUT_KEY}",
        "output_uri": f"s3://{seed.DATA_BUCKET}/{s3_layout.OUTPUT_PREFIX}",
    }
    secret_ids = {key: f"arn:aws:secretsmanager:us-west-2:123456789012:secret:{key}-AbCdEf" for key in SECRET_KEYS}


@pytest.fixture
def seeded_aws() -> SeededAws:
    return SeededAws()


def stand_in_cluster(aws, root: Path) -> list[RehearsalHost]:
    """The cluster profile's three nodes (not started) on `aws`, a stand-in of the seeded emulator."""
    return cluster_nodes(
        aws,
        root,
        root / "venv",
        1.0,
        db_port=3306,
        db_ca_bundle=root / "db-ca.pem",
        redis_port=6379,
        redis_ca_bundle=root / "redis-ca.pem",
        scheduler_count=1,
    )


@pytest.fixture
def cluster_hosts(tmp_path, seeded_aws) -> list[RehearsalHost]:
    return stand_in_cluster(seeded_aws, tmp_path)


def pytest_addoption(parser):
    parser.addoption(
        "--docs-screenshots",
        action="store_true",
        help="copy the UI test's screenshots into docs/ (tests/rehearsal/test_cluster.py)",
    )
