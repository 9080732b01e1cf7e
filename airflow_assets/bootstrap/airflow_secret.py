"""Print one Airflow setting that is built from AWS Secrets Manager, for Airflow's ``*_cmd`` options.

Airflow runs ``<option>_cmd`` whenever it needs a sensitive value, so secrets stay in Secrets Manager
and in process memory and never land on disk. The lookup goes through the amazon provider's
``SecretsManagerHook`` with the ``aws_default`` connection (instance role on EC2, the emulator in the
rehearsal).

``exec -- <command>`` is how the long-running services start: Airflow re-reads some options on every
request (the api-server reads ``jwt_secret`` per call), and each ``_cmd`` costs a Python start with the
provider imported, so the services resolve every ``AIRFLOW__*_CMD`` once, in this process, and exec
with the values in their environment (memory only, like ``_cmd`` output).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlencode


def _isolate_from_airflow_config() -> None:
    # This helper is itself started by Airflow while Airflow reads its config: importing airflow here
    # with the *_cmd options still set would recurse, so drop them and skip airflow's ORM/logging set-up.
    for name in [n for n in os.environ if n.startswith("AIRFLOW__") and n.endswith(("_CMD", "_SECRET"))]:
        del os.environ[name]
    os.environ["_AIRFLOW__AS_LIBRARY"] = "1"


def fetch_secret(secret_id: str) -> str:
    _isolate_from_airflow_config()
    from airflow.providers.amazon.aws.hooks.secrets_manager import SecretsManagerHook

    return SecretsManagerHook(aws_conn_id="aws_default").get_secret(secret_id)


def fernet_key(seed: str) -> str:
    """The Fernet key every node derives from the shared seed (contracts §3)."""
    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def mysql_url(credentials: dict, *, scheme: str, host: str, port: str, database: str, ca_bundle: str) -> str:
    # PyMySQL, not mysqlclient: mysqlclient writes str-Enum values as "CallbackType.DAG_PROCESSOR",
    # which breaks Airflow 3.3's heartbeat-timeout callbacks on MySQL ("Data too long for column 'type'").
    query: dict[str, str] = {"charset": "utf8mb4"}
    if ca_bundle:
        query["ssl_ca"] = ca_bundle  # TLS that verifies the certificate and the host name
    user = quote(credentials["username"], safe="")
    password = quote(credentials["password"], safe="")
    return f"{scheme}://{user}:{password}@{host}:{port}/{database}?{urlencode(query)}"


def redis_url(token: str, *, host: str, port: str, tls: bool, ca_bundle: str = "") -> str:
    """Celery's broker and result-backend URL. With TLS the certificate is verified: against `ca_bundle`
    when given, else against the OS trust store (which holds the Amazon roots ElastiCache's chain to)."""
    if not tls:
        return f"redis://:{quote(token, safe='')}@{host}:{port}/0"
    query = {"ssl_cert_reqs": "required", **({"ssl_ca_certs": ca_bundle} if ca_bundle else {})}
    return f"rediss://:{quote(token, safe='')}@{host}:{port}/0?{urlencode(query)}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    sub.add_parser("value", help="the secret string as stored").add_argument("secret_id")
    sub.add_parser("fernet-key", help="the Fernet key derived from the seed secret").add_argument("secret_id")
    mysql = sub.add_parser("mysql-url", help="SQLAlchemy URL from the RDS {username,password} secret")
    mysql.add_argument("secret_id")
    mysql.add_argument("--scheme", default="mysql+pymysql")
    mysql.add_argument("--host", required=True)
    mysql.add_argument("--port", default="3306")
    mysql.add_argument("--database", required=True)
    mysql.add_argument("--ca-bundle", default="", help="TLS, verified against this CA file (PyMySQL's ssl_ca)")
    basic_auth = sub.add_parser("basic-auth", help="user:password (Flower's basic_auth) from a password secret")
    basic_auth.add_argument("secret_id")
    basic_auth.add_argument("--user", default="admin")
    redis = sub.add_parser("redis-url", help="Celery broker URL from the AUTH token secret")
    redis.add_argument("secret_id")
    redis.add_argument("--host", required=True)
    redis.add_argument("--port", default="6379")
    redis.add_argument("--tls", action="store_true")
    redis.add_argument(
        "--ca-bundle", default="", help="with --tls: verify against this CA file, not the OS trust store"
    )
    return parser


def resolve(args: argparse.Namespace) -> str:
    secret = fetch_secret(args.secret_id)
    if args.kind == "value":
        return secret
    if args.kind == "fernet-key":
        return fernet_key(secret)
    if args.kind == "basic-auth":
        return f"{args.user}:{secret}"
    if args.kind == "mysql-url":
        try:
            credentials = json.loads(secret)
        except json.JSONDecodeError:
            raise SystemExit(
                f"airflow_secret: secret {args.secret_id} is not JSON with username and password"
            ) from None
        return mysql_url(
            credentials,
            scheme=args.scheme,
            host=args.host,
            port=args.port,
            database=args.database,
            ca_bundle=args.ca_bundle,
        )
    return redis_url(secret, host=args.host, port=args.port, tls=args.tls, ca_bundle=args.ca_bundle)


def _resolve_command(command: str) -> str:
    argv = shlex.split(command)
    if len(argv) >= 2 and Path(argv[1]).resolve() == Path(__file__).resolve():
        return resolve(_parser().parse_args(argv[2:]))
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def exec_with_secrets(command: list[str], only_here: dict[str, str] | None = None) -> None:
    """Replace this process with ``command``, every ``AIRFLOW__X__Y_CMD`` resolved into ``AIRFLOW__X__Y``.

    ``only_here`` maps further ``AIRFLOW__X__Y_CMD`` names to commands for this one process: a secret
    only it needs (Flower's basic_auth) stays out of airflow.env, so no other process (and no task)
    finds it in its environment.
    """
    if not command:
        raise SystemExit("airflow_secret exec: no command given")
    commands = {n: v for n, v in os.environ.items() if n.startswith("AIRFLOW__") and n.endswith("_CMD")}
    env = {n: v for n, v in os.environ.items() if n not in commands}
    commands |= only_here or {}
    for name, option_command in commands.items():
        try:
            env[name.removesuffix("_CMD")] = _resolve_command(option_command)
        except Exception as error:
            raise SystemExit(f"airflow_secret exec: {name} failed: {type(error).__name__}: {error}") from None
    os.execvpe(command[0], command, env)


def _reserve_stdout_for_the_value() -> io.TextIOWrapper:
    """Airflow reads the whole of stdout as the setting, so everything else (hook logs) goes to stderr."""
    sys.stdout.flush()
    value_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return value_stream


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["exec"]:
        rest, only_here = argv[1:], {}
        while rest[:1] == ["--set"] and len(rest) >= 3:  # exec --set AIRFLOW__X__Y_CMD 'command' ... -- cmd
            only_here[rest[1]] = rest[2]
            rest = rest[3:]
        exec_with_secrets(rest[1:] if rest[:1] == ["--"] else rest, only_here)
    args = _parser().parse_args(argv)
    value_stream = _reserve_stdout_for_the_value()
    try:
        value = resolve(args)
    except SystemExit:
        raise
    except Exception as error:  # the message names the secret id, never its value
        print(f"airflow_secret: cannot read secret {args.secret_id}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    value_stream.write(value)
    value_stream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
