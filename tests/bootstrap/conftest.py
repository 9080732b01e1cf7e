"""Fixtures for the node bootstrap tests: a node.env in a tmp dir, and a runner for the role entries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
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
        "REDIS_HOST": "redis.example.internal",
        "REDIS_PORT": "6379",
        "REDIS_TLS": "true",
        "REDIS_AUTH_SECRET_ID": "redis-auth",
        "FERNET_KEY_SECRET_ID": "fernet-seed",
        "JWT_SECRET_SECRET_ID": "jwt-secret",
        "API_SECRET_KEY_SECRET_ID": "api-secret-key",
        "ADMIN_PASSWORD_SECRET_ID": "admin-password",
        "REMOTE_LOG_URI": "s3://logs/airflow/",
        "EMR_PIPELINE_JSON": PIPELINE_JSON,
        "PROCESS_MANAGER": "external",
        "RUNTIME_DIR": str(tmp_path / "run"),
    }


def write_node_env(path: Path, params: dict[str, str]) -> Path:
    lines = [f"{k}='{v}'" if v.startswith("{") else f"{k}={v}" for k, v in params.items()]
    path.write_text("\n".join(lines) + "\n")
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
        env.update(PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", NODE_ENV_FILE=str(self.node_env),
                   **(extra_env or {}))
        return subprocess.run(["bash", str(BOOTSTRAP_DIR / f"{role}.sh"), phase], env=env,
                              capture_output=True, text=True, check=False, timeout=300)

    @property
    def home(self) -> Path:
        return Path(self.params["AIRFLOW_HOME"])


@pytest.fixture
def bootstrap(tmp_path: Path) -> Bootstrap:
    return Bootstrap(tmp_path)
