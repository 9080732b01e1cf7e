"""Fixtures for the DAG tests: an isolated Airflow home and in-process AWS (moto)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ...pipeline_support import DAGS_FOLDER, PIPELINE_CONFIG

# Unset so the in-process emulator, not some endpoint from the caller's shell, answers.
_UNSET = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")


@pytest.fixture(scope="package", autouse=True)
def pipeline_environment(tmp_path_factory):
    """Airflow home, Variable, connection and dummy AWS keys for this folder's tests only.

    Set here rather than at import so other folders' tests (collected earlier, run earlier) and their
    subprocesses never see them; restored afterwards. This folder imports Airflow only inside
    fixtures and tests; if an earlier folder imported it already, its ORM is re-pointed here.
    """
    home = tmp_path_factory.mktemp("airflow-home")
    values = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"sqlite+aiosqlite:///{home}/airflow.db",
        "AIRFLOW_VAR_EMR_PIPELINE": json.dumps(PIPELINE_CONFIG),
        "AIRFLOW_CONN_AWS_DEFAULT": "aws://?region_name=us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {key: os.environ.get(key) for key in (*values, *_UNSET)}
    os.environ.update(values)
    for key in _UNSET:
        os.environ.pop(key, None)
    # Airflow puts the bundle (dags folder) on sys.path when it parses DAG files; tests import it too.
    sys.path.insert(0, str(DAGS_FOLDER))
    _point_airflow_at_environment()
    yield
    sys.path.remove(str(DAGS_FOLDER))
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _point_airflow_at_environment()


def _point_airflow_at_environment() -> None:
    """If another folder's tests imported Airflow already, re-read the database and dags settings.

    Everything else Airflow reads from the environment on each lookup (Variables, connections).
    """
    if "airflow.settings" not in sys.modules:
        return
    from airflow import settings

    settings.dispose_orm(do_log=False)
    settings.configure_vars()
    settings.configure_orm()


@pytest.fixture(scope="package")
def airflow_db(pipeline_environment):
    from airflow.utils.db import resetdb

    resetdb()
    yield


@pytest.fixture(scope="package")
def dagbag(pipeline_environment):
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(DAGS_FOLDER, bundle_path=DAGS_FOLDER)


@pytest.fixture(scope="package")
def moto_endpoint(pipeline_environment):
    """The in-process emulator served over HTTP too, for the AWS triggers' aiobotocore clients.

    moto's in-process interception serves botocore only; aiobotocore needs a real endpoint. The server
    runs in this process, so it shares the emulator's state with the tests' own boto3 clients.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(pipeline_environment, moto_endpoint, monkeypatch):
    """AWS emulator with the SES sender verified; yields the moto SES backend.

    Airflow reaches it through ``aws_default``'s ``endpoint_url`` (like the rehearsal, contracts section 2).
    """
    import boto3
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    connection = {"conn_type": "aws", "extra": {"region_name": "us-east-1", "endpoint_url": moto_endpoint}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    with mock_aws():
        boto3.client("ses", region_name="us-east-1").verify_email_identity(EmailAddress=PIPELINE_CONFIG["sender_email"])
        yield ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
