"""The node's metadata DB clients against a server that, like the RDS instance, accepts only TLS."""

import json
import sys

import pymysql
import pytest

from .conftest import run_in_unit

# What the api-server's endpoints do: the sync ORM session, and the async one that e.g.
# GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/wait polls through (create_session_async).
SESSION_PROBE = """
import asyncio, json
from sqlalchemy import text
from airflow.utils.session import create_session, create_session_async

CIPHER = text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")

async def async_cipher():
    async with create_session_async() as session:
        return (await session.execute(CIPHER)).one()[1]

with create_session() as session:
    sync_cipher = session.execute(CIPHER).one()[1]
print("CIPHERS", json.dumps({"sync": sync_cipher, "async": asyncio.run(async_cipher())}))
"""


def _configured_api_server(bootstrap, node_secrets, **params):
    bootstrap.params.update(node_secrets.params, AIRFLOW_ROLE="api-server", **params)
    result = bootstrap.run("configure")
    assert result.returncode == 0, result.stderr


def test_server_refuses_a_connection_without_tls(tls_mariadb, node_secrets):
    credentials = json.loads(node_secrets.values["DB_SECRET_ID"])
    login = {
        "host": "127.0.0.1",
        "port": tls_mariadb.port,
        "user": credentials["username"],
        "password": credentials["password"],
        "database": node_secrets.params["DB_NAME"],
    }
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**login)
    pymysql.connect(**login, ssl={"ca": str(tls_mariadb.ca_bundle)}).close()


def test_sync_and_async_engines_connect_over_verified_tls(bootstrap, node_secrets):
    _configured_api_server(bootstrap, node_secrets)
    result = run_in_unit(bootstrap, "api-server", [sys.executable, "-c", SESSION_PROBE])
    # The server requires TLS as RDS's parameter group makes it, and the credentials are right: a refusal is
    # the transport's. MariaDB words it "Access denied", MySQL 8.4 (RDS) "insecure transport" (error 3159).
    assert result.returncode == 0, (
        "a node engine was refused by a server with require_secure_transport=ON: " + result.stderr[-3000:]
    )
    ciphers = json.loads(result.stdout.split("CIPHERS ", 1)[1].splitlines()[0])
    assert ciphers["sync"] and ciphers["async"], ciphers


def test_both_engines_refuse_a_server_certificate_from_another_ca(bootstrap, node_secrets, tmp_path):
    from rehearsal.services import write_test_ca_and_server_cert

    other_ca = write_test_ca_and_server_cert(tmp_path / "other")["ca"]
    _configured_api_server(bootstrap, node_secrets, DB_CA_BUNDLE=str(other_ca))
    for engine in ("create_session()", "create_session_async()"):
        probe = SESSION_PROBE.split("CIPHER = ")[0] + (
            "with create_session() as s: s.execute(text('SELECT 1'))"
            if engine == "create_session()"
            else "async def f():\n    async with create_session_async() as s: await s.execute(text('SELECT 1'))\nasyncio.run(f())"
        )
        result = run_in_unit(bootstrap, "api-server", [sys.executable, "-c", probe])
        assert result.returncode != 0, (
            f"{engine} accepted a server certificate the CA bundle did not sign (no verification)"
        )
        assert "CERTIFICATE_VERIFY_FAILED" in result.stderr, result.stderr[-2000:]


def test_tls_without_a_ca_bundle_is_refused_by_name(bootstrap):
    bootstrap.params.update(DB_TLS="true", DB_CA_BUNDLE="")
    result = bootstrap.run("configure")
    assert result.returncode != 0
    assert "DB_CA_BUNDLE" in result.stderr
