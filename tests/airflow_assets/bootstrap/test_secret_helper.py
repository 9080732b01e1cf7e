import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, unquote, urlencode, urlparse

from cryptography.fernet import Fernet

from .conftest import BOOTSTRAP_DIR

sys.path.insert(0, str(BOOTSTRAP_DIR))
import airflow_secret  # noqa: E402


def test_fernet_key_is_derived_identically_and_usable():
    key = airflow_secret.fernet_key("s" * 64)
    assert key == airflow_secret.fernet_key("s" * 64)
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


def test_mysql_url_escapes_credentials_and_verifies_tls_with_the_ca_bundle():
    url = airflow_secret.mysql_url(
        {"username": "air flow", "password": "p@ss/w:rd?"},
        scheme="mysql+pymysql",
        host="db",
        port="3306",
        database="airflow",
        ca_bundle="/etc/pki/ca.pem",
    )
    parsed = urlparse(url)
    assert (unquote(parsed.username), unquote(parsed.password)) == ("air flow", "p@ss/w:rd?")
    assert parsed.hostname == "db" and parsed.path == "/airflow"
    assert parse_qs(parsed.query)["ssl_ca"] == ["/etc/pki/ca.pem"]


def test_redis_url_uses_rediss_with_tls():
    assert (
        airflow_secret.redis_url("t/k", host="r", port="6379", tls=True)
        == "rediss://:t%2Fk@r:6379/0?ssl_cert_reqs=required"
    )
    assert airflow_secret.redis_url("tk", host="r", port="6379", tls=False) == "redis://:tk@r:6379/0"


def test_redis_url_with_a_ca_bundle_makes_the_broker_client_verify_against_it():
    import ssl

    from kombu.utils.url import parse_url

    url = airflow_secret.redis_url("tk", host="r", port="6379", tls=True, ca_bundle="/etc/pki/redis ca.pem")
    assert parse_url(url)["ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/pki/redis ca.pem"}


def _helper(endpoint, *args):
    env = {
        "PATH": os.environ["PATH"],
        "AIRFLOW_CONN_AWS_DEFAULT": "aws://testing:testing@/?"
        + urlencode({"region_name": "us-west-2", "endpoint_url": endpoint}),
        # Airflow runs the helper while these are set; the helper must not recurse into them.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": f"{sys.executable} {BOOTSTRAP_DIR / 'airflow_secret.py'} value x",
        "AIRFLOW__CORE__FERNET_KEY_CMD": "false",
    }
    return subprocess.run(
        [sys.executable, str(BOOTSTRAP_DIR / "airflow_secret.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_helper_reads_secrets_through_the_aws_default_connection(moto_endpoint, secrets_client):
    client = secrets_client
    arn = client.create_secret(Name="db-master", SecretString=json.dumps({"username": "u", "password": "p w"}))["ARN"]
    result = _helper(moto_endpoint, "mysql-url", arn, "--host", "h", "--database", "d")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "mysql+pymysql://u:p%20w@h:3306/d?charset=utf8mb4"


def test_helper_names_a_missing_secret_without_a_traceback(moto_endpoint):
    result = _helper(moto_endpoint, "value", "no-such-secret")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("airflow_secret: cannot read secret no-such-secret")
