"""Fixtures for the node bootstrap tests: a node.env in a tmp dir, a runner for the role entries, an emulated
Secrets Manager holding the node's secrets, and a MariaDB server that requires TLS."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from airflow_assets.bootstrap import node_env_file
from rehearsal.nodes import free_port
from rehearsal.services import TlsOnlyMariaDb, new_database_credentials
from stacks.config import REPO_ROOT

BOOTSTRAP_DIR = REPO_ROOT / "airflow_assets" / "bootstrap"
PIPELINE_JSON = '{"region":"us-west-2","output_uri":"s3://data/output/","alert_email":"ops@example.com"}'


def base_params(tmp_path: Path) -> dict[str, str]:
    return {
        "AIRFLOW_ROLE": "scheduler",
        "STAGE": "dev",
        "AWS_REGION": "us-west-2",
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW_VENV": sys.prefix,
        "DAGS_FOLDER": str(tmp_path / "efs" / "dags"),
        "DAGS_SOURCE_DIR": str(REPO_ROOT / "airflow_assets" / "dags"),
        "EXECUTOR": "CeleryExecutor",
        "SCHEDULER_COUNT": "1",
        "API_SERVER_HOST": "10.0.1.10",
        "API_SERVER_PORT": "8080",
        "DB_HOST": "db.example.internal",
        "DB_PORT": "3306",
        "DB_NAME": "airflow",
        "DB_SECRET_ID": "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-master-AbCdEf",
        "DB_TLS": "true",
        "DB_CA_BUNDLE": "/etc/pki/rds/global-bundle.pem",
        "REDIS_HOST": "redis.example.internal",
        "REDIS_PORT": "6379",
        "REDIS_TLS": "true",
        "REDIS_AUTH_SECRET_ID": "redis-auth",
        "FERNET_KEY_SECRET_ID": "fernet-seed",
        "JWT_SECRET_SECRET_ID": "jwt-secret",
        "API_SECRET_KEY_SECRET_ID": "api-secret-key",
        "ADMIN_PASSWORD_SECRET_ID": "admin-password",
        "FLOWER_PASSWORD_SECRET_ID": "flower-password",
        "REMOTE_LOG_URI": "s3://logs/airflow/",
        "EMR_PIPELINE_JSON": PIPELINE_JSON,
        "PROCESS_MANAGER": "external",
    }


def write_node_env(path: Path, params: dict[str, str]) -> Path:
    path.write_text(node_env_file.render(params))
    return path


class Bootstrap:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.params = base_params(tmp_path)
        self.node_env = tmp_path / "node.env"

    def run(self, phase: str, role: str | None = None, extra_env: dict[str, str] | None = None):
        write_node_env(self.node_env, self.params)
        role = role or self.params["AIRFLOW_ROLE"]
        # Keep the machine's proxy/CA settings (uv needs them), drop anything Airflow would pick up.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "NODE_ENV_FILE"))}
        env.update(
            PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            NODE_ENV_FILE=str(self.node_env),
            **(extra_env or {}),
        )
        return subprocess.run(
            ["bash", str(BOOTSTRAP_DIR / f"{role}.sh"), phase],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    @property
    def home(self) -> Path:
        return Path(self.params["AIRFLOW_HOME"])


@pytest.fixture
def bootstrap(tmp_path: Path) -> Bootstrap:
    return Bootstrap(tmp_path)


@pytest.fixture(scope="session")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def tls_mariadb(tmp_path_factory):
    """A MariaDB server that refuses connections without TLS, as the RDS instance does."""
    server = TlsOnlyMariaDb(tmp_path_factory.mktemp("tls-mariadb"), free_port())
    server.start()
    yield server
    server.stop()


@dataclass
class NodeSecrets:
    """Every secret a node.env names, stored in the emulated Secrets Manager; ``values`` holds what each resolves to."""

    params: dict[str, str]
    values: dict[str, str]


@pytest.fixture
def secrets_client(moto_endpoint):
    """Secrets Manager of the session's moto, with the key the nodes' aws_default connection uses."""
    return boto3.client(
        "secretsmanager",
        region_name="us-west-2",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def node_secrets(moto_endpoint, secrets_client, tls_mariadb) -> NodeSecrets:
    """The node's secrets in moto and a fresh database + user on the TLS-only server, as on AWS."""
    client = secrets_client
    credentials = new_database_credentials()
    database = tls_mariadb.database(
        name=credentials["database"], username=credentials["username"], password=credentials["password"]
    )
    database.create()
    suffix = credentials["database"].rsplit("_", 1)[-1]
    values = {
        "DB_SECRET_ID": json.dumps({"username": credentials["username"], "password": credentials["password"]}),
        "REDIS_AUTH_SECRET_ID": f"redis-token-{suffix}",
        "FERNET_KEY_SECRET_ID": f"fernet-seed-{suffix}",
        "JWT_SECRET_SECRET_ID": f"jwt-secret-{suffix}",
        "API_SECRET_KEY_SECRET_ID": f"api-secret-key-{suffix}",
        "ADMIN_PASSWORD_SECRET_ID": f"admin-password-{suffix}",
        "FLOWER_PASSWORD_SECRET_ID": f"flower-password-{suffix}",
    }
    params = {
        key: client.create_secret(Name=f"{key.lower()}-{suffix}", SecretString=value)["ARN"]
        for key, value in values.items()
    }
    params.update(
        AWS_ENDPOINT_URL=moto_endpoint,
        DB_KIND="mysql",
        DB_HOST="127.0.0.1",
        DB_PORT=str(tls_mariadb.port),
        DB_NAME=credentials["database"],
        DB_TLS="true",
        DB_CA_BUNDLE=str(tls_mariadb.ca_bundle),
    )
    yield NodeSecrets(params, values)
    database.drop()


def run_in_unit(bootstrap: Bootstrap, unit_name: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``argv`` as the rendered unit runs its process: systemd's environment from the unit's
    EnvironmentFile, then the unit's secret helper (``airflow_secret.py exec --``) in front of ``argv``."""
    from rehearsal.supervisor import Unit

    unit = Unit.parse(bootstrap.home / "units" / f"airflow-{unit_name}.service")
    helper = unit.exec_start[: unit.exec_start.index("--") + 1]
    return subprocess.run(
        [*helper, *argv],
        env=unit.environment(),
        cwd=unit.working_directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


@pytest.fixture
def node_module(monkeypatch):
    """node.py as a node runs it: a script beside node_env_file.py, which it imports as a top-level module."""
    monkeypatch.syspath_prepend(str(BOOTSTRAP_DIR))
    return importlib.import_module("node")
