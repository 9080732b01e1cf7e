"""node.env's format: what the writer renders, the bash reader of lib/bootstrap.sh and the Python parser read alike."""

from __future__ import annotations

import subprocess

import pytest

from airflow_assets.bootstrap import node_env_file

from .conftest import BOOTSTRAP_DIR

AWKWARD = {
    "EMR_PIPELINE_JSON": '{"cluster_tags": [{"Key": "stack", "Value": "airflow-emr dev"}], "n": 3}',
    "DB_HOST": "${Token[TOKEN.123]}",  # an unresolved CDK token, and what dotenv would expand
    "REMOTE_LOG_URI": "s3://logs/airflow/",
    "DB_SECRET_ID": "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbC+d=",
    "AIRFLOW_USER": "",
    "COLOCATED_ROLES": "api-server worker",
    "API_SERVER_PORT": "8080",
}


def bash_reads(path, keys) -> dict[str, str]:
    """Each key as the bootstrap's own `node_env` reads it (the default '' so an empty value is no error)."""
    script = f'source "{BOOTSTRAP_DIR}/lib/bootstrap.sh"; NODE_ENV_FILE="$1"; shift; for k; do node_env "$k" ""; printf "\\0"; done'
    out = subprocess.run(
        ["bash", "-c", script, "bash", str(path), *keys], capture_output=True, text=True, check=True
    ).stdout
    return dict(zip(keys, out.split("\0"), strict=False))  # a trailing NUL leaves one empty field over


def test_bash_and_python_read_back_what_was_rendered(tmp_path):
    path = tmp_path / "node.env"
    path.write_text(node_env_file.render(AWKWARD))
    assert node_env_file.parse(path.read_text()) == AWKWARD
    assert bash_reads(path, list(AWKWARD)) == AWKWARD


@pytest.mark.parametrize("value", ["it's", "two\nlines"])
def test_a_value_the_format_cannot_carry_is_refused(value):
    with pytest.raises(node_env_file.NodeEnvError, match="KEY"):
        node_env_file.render({"KEY": value})


def test_a_key_no_node_reads_is_named(tmp_path, bootstrap):
    bootstrap.params["DB_SSLMODE"] = "require"
    path = tmp_path / "typo.env"
    path.write_text(node_env_file.render(bootstrap.params))
    with pytest.raises(node_env_file.NodeEnvError, match="keys no node reads: DB_SSLMODE"):
        node_env_file.read(path)
