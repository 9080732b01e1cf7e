"""Local stand-ins the cluster profile needs, as strict as RDS and ElastiCache on the wire: a throwaway
MariaDB server that, like RDS with require_secure_transport, refuses every connection without TLS (with
a database + user per run), and a dedicated Redis that speaks only TLS and wants AUTH, like ElastiCache
with in-transit encryption. Each has its own private CA, handed to the nodes as the stack hands them
the RDS bundle (and the OS trust store the ElastiCache certificate chains to).

Also the one-line checks for what the machine must provide (services, Java, Node).
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
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
        raise MissingPrerequisite(
            "Java 17 is missing (Spark runs the EMR steps locally): "
            "apt-get install openjdk-17-jre-headless, or " + SETUP_HINT
        )


def require_node() -> None:
    # aws-cdk-lib runs on Node (jsii): the rehearsal synthesizes the stack whose IAM policies it enforces.
    if shutil.which("node") is None:
        raise MissingPrerequisite(
            "Node.js is missing (the rehearsal synthesizes the CDK stack to enforce its IAM "
            "policies): apt-get install nodejs, or " + SETUP_HINT
        )


def mariadb_binary(name: str) -> str:
    binary = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        raise MissingPrerequisite(f"{name} is not installed: apt-get install mariadb-server, or {SETUP_HINT}")
    return binary


def require_mariadb_server() -> None:
    """The cluster profile starts its own TLS-only MariaDB server (TlsOnlyMariaDb) from these."""
    for name in ("mariadb-install-db", "mariadbd"):
        mariadb_binary(name)


def require_redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingPrerequisite(f"redis-server is not installed: apt-get install redis-server, or {SETUP_HINT}")
    return binary


def stop_process(process: subprocess.Popen | None, *, timeout: float) -> None:
    """SIGTERM a server we started, SIGKILL it after `timeout` seconds, and reap it."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RehearsalDatabase:
    """A fresh database and user per run, credentials taken from the emulated RDS secret.

    With ``ca_bundle`` the admin connection uses TLS verified against it (for a server that requires TLS).
    """

    def __init__(
        self,
        *,
        name: str,
        username: str,
        password: str,
        host: str = "127.0.0.1",
        port: int = 3306,
        ca_bundle: Path | None = None,
    ):
        self.name, self.username, self.password = name, username, password
        self.host, self.port, self.ca_bundle = host, port, ca_bundle

    def _admin(self):
        import pymysql

        tls = {"ssl": {"ca": str(self.ca_bundle)}} if self.ca_bundle else {}
        try:
            return pymysql.connect(host=self.host, port=self.port, user="root", password="", autocommit=True, **tls)
        except pymysql.err.OperationalError as error:
            raise MissingPrerequisite(
                f"cannot log in to MariaDB on {self.host}:{self.port} as root without a password ({error.args[-1]}): "
                + SETUP_HINT
            ) from None

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

    def reset_connection_peak(self) -> None:
        """Max_used_connections restarts from the connections open now (MariaDB's FLUSH STATUS)."""
        with self._admin() as conn, conn.cursor() as cursor:
            cursor.execute("FLUSH STATUS")

    def connection_peak(self) -> int:
        """The most connections the server held at once since it started or the last reset (this one included)."""
        with self._admin() as conn, conn.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
            return int(cursor.fetchone()[1])


def new_database_credentials() -> dict[str, str]:
    suffix = secrets.token_hex(4)
    return {
        "database": f"airflow_rehearsal_{suffix}",
        "username": f"airflow_{suffix}",
        "password": secrets.token_urlsafe(24),
    }


class RehearsalRedis:
    """A dedicated redis-server with requirepass, so the broker URL carries AUTH as on ElastiCache.

    With ``tls=True`` it listens only for TLS (``port 0``, ``tls-port``), like a replication group with
    in-transit encryption, with a server certificate for localhost/127.0.0.1 signed by its own CA
    (``ca_bundle``); clients need no certificate of their own (ElastiCache asks for none).
    """

    def __init__(self, workdir: Path, password: str, port: int, *, tls: bool = False):
        self.workdir, self.password, self.port, self.tls = workdir, password, port, tls
        self.process: subprocess.Popen | None = None
        self.certs: dict[str, Path] = {}

    @property
    def ca_bundle(self) -> Path:
        return self.certs["ca"]

    def _listen(self) -> str:
        if not self.tls:
            return f"port {self.port}\n"
        self.certs = write_test_ca_and_server_cert(self.workdir / "tls")
        return (
            f"port 0\ntls-port {self.port}\ntls-cert-file {self.certs['cert']}\ntls-key-file {self.certs['key']}\n"
            f"tls-ca-cert-file {self.certs['ca']}\ntls-auth-clients no\n"
        )

    def start(self) -> None:
        binary = require_redis_server()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = (
            f"bind 127.0.0.1\n{self._listen()}requirepass {json.dumps(self.password)}\n"
            f'save ""\nappendonly no\ndir {self.workdir}\n'
        )
        log = (self.workdir / "redis.log").open("ab")
        # Config on stdin keeps the AUTH token off the command line and off disk.
        self.process = subprocess.Popen(
            [binary, "-"], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.process.stdin.write(config.encode())
        self.process.stdin.close()
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise MissingPrerequisite(
                    f"redis-server did not start on 127.0.0.1:{self.port}, see {self.workdir / 'redis.log'}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


def write_test_ca_and_server_cert(
    directory: Path, *, server_names: tuple[str, ...] = ("localhost",), server_ips: tuple[str, ...] = ("127.0.0.1",)
) -> dict[str, Path]:
    """A private CA (ca.pem) and a server certificate it signed (server-cert.pem, server-key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = {
        "not_valid_before": now - datetime.timedelta(minutes=5),
        "not_valid_after": now + datetime.timedelta(days=2),
    }
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test CA {secrets.token_hex(4)}")])
    ca_cert = (
        x509.CertificateBuilder(
            subject_name=ca_name,
            issuer_name=ca_name,
            public_key=ca_key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.DNSName(n) for n in server_names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in server_ips]
    server_cert = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_names[0])]),
            issuer_name=ca_name,
            public_key=server_key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem", "cert": directory / "server-cert.pem", "key": directory / "server-key.pem"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths["key"].chmod(0o600)
    return paths


class TlsOnlyMariaDb:
    """A throwaway MariaDB server that refuses connections without TLS, as RDS with require_secure_transport does.

    Root logs in without a password (over TLS); ``ca_bundle`` is the CA that signed the server certificate
    (names localhost and 127.0.0.1). ``database(...)`` gives a RehearsalDatabase on it. ``max_connections``
    caps the connections as RDS's parameter group does (default: MariaDB's own, 151).
    """

    def __init__(self, workdir: Path, port: int, *, max_connections: int | None = None):
        self.workdir, self.port, self.max_connections = workdir, port, max_connections
        self.datadir = workdir / "data"
        self.process: subprocess.Popen | None = None
        self.certs: dict[str, Path] = {}

    @property
    def ca_bundle(self) -> Path:
        return self.certs["ca"]

    @property
    def log_file(self) -> Path:
        return self.workdir / "mariadb.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.certs = write_test_ca_and_server_cert(self.workdir / "tls")
        user = getpass.getuser()
        install = subprocess.run(
            [
                mariadb_binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--user={user}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode:
            raise MissingPrerequisite(f"mariadb-install-db failed: {install.stderr.strip()[-500:]}")
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                mariadb_binary("mariadbd"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--user={user}",
                f"--socket={self.workdir / 'mariadb.sock'}",
                f"--pid-file={self.workdir / 'mariadb.pid'}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                "--skip-name-resolve",
                f"--ssl-ca={self.certs['ca']}",
                f"--ssl-cert={self.certs['cert']}",
                f"--ssl-key={self.certs['key']}",
                "--require-secure-transport=ON",
                *([f"--max-connections={self.max_connections}"] if self.max_connections else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise MissingPrerequisite(f"mariadbd did not start on 127.0.0.1:{self.port}, see {self.log_file}")
            time.sleep(0.2)

    def database(self, *, name: str, username: str, password: str) -> RehearsalDatabase:
        return RehearsalDatabase(
            name=name, username=username, password=password, port=self.port, ca_bundle=self.ca_bundle
        )

    def stop(self) -> None:
        stop_process(self.process, timeout=30)
