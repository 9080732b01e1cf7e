"""Local stand-ins the cluster profile needs: a MariaDB database + user, a dedicated AUTH Redis.

Also the one-line checks for what the machine must provide (services, Java, Node).
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

SETUP_HINT = "run `make machine` (scripts/setup-machine.sh) to install and start it"


class MissingPrerequisite(RuntimeError):
    """Something the machine must provide is absent; the message says what and how to get it."""


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_java() -> None:
    if shutil.which("java") is None:
        raise MissingPrerequisite("Java 17 is missing (Spark runs the EMR steps locally): "
                                  "apt-get install openjdk-17-jre-headless, or " + SETUP_HINT)


def require_node() -> None:
    # Node is what the CDK CLI runs on; the rehearsal does not synthesize, but `make` targets around it do.
    if shutil.which("node") is None:
        raise MissingPrerequisite("Node.js is missing (the CDK CLI needs it): apt-get install nodejs npm, or " + SETUP_HINT)


def require_mariadb(host: str = "127.0.0.1", port: int = 3306) -> None:
    if not port_open(host, port):
        raise MissingPrerequisite(f"MariaDB/MySQL is not listening on {host}:{port}: {SETUP_HINT}")


def require_redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingPrerequisite(f"redis-server is not installed: apt-get install redis-server, or {SETUP_HINT}")
    return binary


class RehearsalDatabase:
    """A fresh database and user per run, credentials taken from the emulated RDS secret."""

    def __init__(self, *, name: str, username: str, password: str, host: str = "127.0.0.1", port: int = 3306):
        self.name, self.username, self.password = name, username, password
        self.host, self.port = host, port

    def _admin(self):
        import pymysql

        try:
            return pymysql.connect(host=self.host, port=self.port, user="root", password="", autocommit=True)
        except pymysql.err.OperationalError as error:
            raise MissingPrerequisite(
                f"cannot log in to MariaDB on {self.host}:{self.port} as root without a password ({error.args[-1]}): "
                + SETUP_HINT) from None

    def create(self) -> None:
        with self._admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            for host in ("localhost", "127.0.0.1", "%%"):  # %% : pymysql formats the query
                cursor.execute(f"CREATE USER '{self.username}'@'{host}' IDENTIFIED BY %s", (self.password,))
                cursor.execute(f"GRANT ALL PRIVILEGES ON `{self.name}`.* TO '{self.username}'@'{host}'", ())

    def drop(self) -> None:
        with self._admin() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            for host in ("localhost", "127.0.0.1", "%"):
                cursor.execute(f"DROP USER IF EXISTS '{self.username}'@'{host}'")


def new_database_credentials() -> dict[str, str]:
    suffix = secrets.token_hex(4)
    return {"database": f"airflow_rehearsal_{suffix}", "username": f"airflow_{suffix}",
            "password": secrets.token_urlsafe(24)}


class RehearsalRedis:
    """A dedicated redis-server with requirepass, so the broker URL carries AUTH as on ElastiCache."""

    def __init__(self, workdir: Path, password: str, port: int):
        self.workdir, self.password, self.port = workdir, password, port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = require_redis_server()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = (f"bind 127.0.0.1\nport {self.port}\nrequirepass {json.dumps(self.password)}\n"
                  f"save \"\"\nappendonly no\ndir {self.workdir}\n")
        log = (self.workdir / "redis.log").open("ab")
        # Config on stdin keeps the AUTH token off the command line and off disk.
        self.process = subprocess.Popen([binary, "-"], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.process.stdin.write(config.encode())
        self.process.stdin.close()
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise MissingPrerequisite(f"redis-server did not start on 127.0.0.1:{self.port}, see {self.workdir / 'redis.log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
