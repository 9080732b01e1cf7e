"""LocalAws: a seeded in-process moto server plus the local EMR step runner."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.emr.models import Cluster, emr_backends
from moto.ses.models import ses_backends

from rehearsal.aws.api_gate import GatedMotoServer, HeldCall
from rehearsal.aws.emr_launch import EmrRoles
from rehearsal.aws.iam_gate import Caller, EmulatorState, IamGate, RequestMapper
from rehearsal.aws.iam_policy import TemplateIam
from rehearsal.aws.s3_uri import S3Uri
from rehearsal.aws.seed import SEEDED_RELEASE_LABEL, seed
from rehearsal.aws.ses_mail import mail_as_dict
from rehearsal.aws.spark_env import find_spark_environment
from rehearsal.aws.stack_template import bind_to_emulator, synthesized_stack
from rehearsal.aws.step_runner import StepRunner, step_log_dir
from stacks.config import DEFAULTS

SORT_JOB = Path(__file__).resolve().parents[2] / "emr_steps" / "sort_by_spending_score.py"

# Principals are told apart by access key id. The node's key is the one airflow_assets/bootstrap/node.py
# renders into AIRFLOW_CONN_AWS_DEFAULT when AWS_ENDPOINT_URL is set (tests/rehearsal/aws/test_iam_gate.py ties them).
NODE_ROLES = ("scheduler", "api-server", "worker")


def node_access_key(role: str) -> str:
    """The key a node of `role` signs with on the emulator (airflow_assets/bootstrap/node.py renders it),
    so each node's calls are checked against the role its EC2 instance has in the template."""
    return f"node-{role}"


NODE_ROLE_ACCESS_KEY = node_access_key("scheduler")
EMR_INSTANCE_ACCESS_KEY = "rehearsal-emr-instance"
ADMIN_ACCESS_KEY = "rehearsal-admin"  # the rehearsal itself: seeding and inspection, never authorised
DUMMY_SECRET_KEY = "testing"
# Logical-id prefixes of the template's roles (stacks/): the Airflow nodes' role and EMR's instance role.
EMR_INSTANCE_ROLE = "EmrRolesInstanceRole"


log = logging.getLogger(__name__)


def emulated_clusters() -> list[Cluster]:
    """Every cluster in moto's EMR backends, whatever account/region the request landed in.

    moto's EMR takes the region from the endpoint host name only; behind an IP endpoint such as
    the rehearsal's, every cluster lands in moto's default region (us-east-1), not the signed one.
    """
    return [
        cluster
        for account in list(emr_backends.values())
        for backend in list(account.values())
        for cluster in list(backend.clusters.values())
    ]


def _require_free_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise OSError(f"rehearsal: cannot serve the AWS emulator on 127.0.0.1:{port}: {exc.strerror}") from exc


@functools.lru_cache(maxsize=1)
def _sort_job():
    """The sort job module: the home of the published-output contract (LATEST, published_run)."""
    path = SORT_JOB
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


class LocalAws:
    """The AWS side of the rehearsal. Use as a context manager; see docs/emulator.md."""

    _active_lock = threading.Lock()
    _active: LocalAws | None = None

    def __init__(
        self,
        workdir: Path,
        *,
        dataset: Path,
        emr_steps_dir: Path,
        region: str = DEFAULTS["region"],
        port: int = 0,
        poll_interval: float = 0.5,
        sender_email: str = DEFAULTS["sender_email"],
        alert_email: str = DEFAULTS["alert_email"],
        enforce_iam: bool = True,
    ):
        self.workdir = Path(workdir).resolve()
        self.dataset = Path(dataset)
        self.emr_steps_dir = Path(emr_steps_dir)
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self._port = port
        self._poll_interval = poll_interval
        self._sender_email = sender_email
        self._alert_email = alert_email
        self._server: GatedMotoServer | None = None
        self._runner: StepRunner | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self.endpoint_url = ""
        self._pipeline_config: dict[str, Any] = {}
        self._secret_ids: dict[str, str] = {}
        self.enforce_iam = enforce_iam
        self._iam: IamGate | None = None
        self.iam_setup_seconds = 0.0
        self._emr_roles: EmrRoles | None = None
        # Role name -> the key that signs as it on the EMR instances (only the template's EMR instance role).
        self._instance_keys: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not self.dataset.is_file():
            raise FileNotFoundError(f"rehearsal: dataset not found: {self.dataset}")
        if not self.emr_steps_dir.is_dir():
            raise FileNotFoundError(f"rehearsal: EMR steps directory not found: {self.emr_steps_dir}")
        if self._port:
            _require_free_port(self._port)  # werkzeug would raise SystemExit on a busy port
        find_spark_environment(SEEDED_RELEASE_LABEL)  # fail before starting anything if it is missing
        with LocalAws._active_lock:
            if LocalAws._active is not None:
                raise RuntimeError(
                    "rehearsal: a LocalAws is already running in this process "
                    "(moto's backends are process-wide); stop it first"
                )
            LocalAws._active = self
        try:
            self._start_server()
            seeded = seed(
                self.client,
                region=self.region,
                dataset=self.dataset,
                emr_steps_dir=self.emr_steps_dir,
                sender_email=self._sender_email,
                alert_email=self._alert_email,
            )
            self._pipeline_config = seeded.pipeline_config
            self._secret_ids = seeded.secret_ids
            if self.enforce_iam:
                self._enforce_iam()
            self._runner = StepRunner(
                clusters=emulated_clusters,
                clients=self.client,
                mirror_root=self.workdir / "s3",
                instance_access_key=self._instance_access_key,
                emr_roles=self._emr_roles,
                workdir=self.workdir / "emr",
                poll_interval=self._poll_interval,
                spark_for_release=functools.lru_cache(maxsize=None)(find_spark_environment),
                step_env={
                    "AWS_ENDPOINT_URL": self.endpoint_url,
                    "AWS_ACCESS_KEY_ID": EMR_INSTANCE_ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
                    "AWS_DEFAULT_REGION": self.region,
                    "AWS_REGION": self.region,
                },
            )
            self._runner.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        with LocalAws._active_lock:
            if LocalAws._active is self:
                LocalAws._active = None

    def _start_server(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # One access-log line per emulated API call drowns everything else (werkzeug logs at INFO).
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = GatedMotoServer(port=self._port)
        self._server.start()
        self.endpoint_url = self._server.endpoint_url
        # A previous emulator in this process (or a mock_aws) may have left state in moto's backends.
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=30).close()
        with self._clients_lock:
            self._clients.clear()

    def _enforce_iam(self) -> None:
        """From here on every call is authorised against the synthesized template's roles."""
        started = time.monotonic()
        stack = synthesized_stack()
        values, self._pipeline_config = bind_to_emulator(
            stack,
            region=self.region,
            account=self.account_id,
            pipeline_config=self._pipeline_config,
            secret_ids=self._secret_ids,
        )
        template = TemplateIam(stack.template, values)

        def caller(prefix: str, session: str) -> Caller:
            role = template.role_named(prefix)
            return Caller(
                f"arn:aws:sts::{self.account_id}:assumed-role/{values.ref(role)}/{session}", template.principal(role)
            )

        roles_of_nodes = {}
        for role in NODE_ROLES:
            with contextlib.suppress(ValueError):  # no worker instance without CeleryExecutor
                roles_of_nodes[role] = template.instance_role(f"airflow-{role}")

        def node_caller(role: str) -> Caller:
            logical_id = roles_of_nodes[role]
            return Caller(
                f"arn:aws:sts::{self.account_id}:assumed-role/{values.ref(logical_id)}/rehearsal-{role}",
                template.principal(logical_id),
            )

        instance_role = template.role_named(EMR_INSTANCE_ROLE)
        self._instance_keys = {values.ref(instance_role): EMR_INSTANCE_ACCESS_KEY}
        principals = {values.ref(logical_id): logical_id for logical_id in template.roles()}

        def principal_of(name: str):
            return template.principal(principals[name]) if name in principals else None

        self._emr_roles = EmrRoles(self.account_id, self.region, principal_of)
        self._iam = IamGate(
            {
                ADMIN_ACCESS_KEY: Caller(f"arn:aws:iam::{self.account_id}:root", None),
                **{node_access_key(role): node_caller(role) for role in NODE_ROLES if role in roles_of_nodes},
                EMR_INSTANCE_ACCESS_KEY: caller(EMR_INSTANCE_ROLE, "rehearsal-emr-step"),
            },
            RequestMapper(EmulatorState(self.account_id, emulated_clusters)),
        )
        assert self._server is not None
        self._server.iam = self._iam
        self.iam_setup_seconds = time.monotonic() - started
        log.info(
            "rehearsal: IAM enforced for the nodes' roles %s and %s (%.1f s, synthesis %.1f s of it when not cached)",
            roles_of_nodes,
            EMR_INSTANCE_ROLE,
            self.iam_setup_seconds,
            stack.seconds,
        )

    def _instance_access_key(self, role: str) -> str | None:
        """The key the EMR instances of a cluster sign with, for the role in its instance profile."""
        if not self.enforce_iam:
            return EMR_INSTANCE_ACCESS_KEY  # nothing is authorised: any key the emulator accepts
        return self._instance_keys.get(role)

    def iam_report(self) -> dict[str, Any]:
        """{"enforced", "calls", "denied": [{principal, action, resource, message}], "setup_seconds"}."""
        if self._iam is None:
            return {"enforced": False, "calls": 0, "denied": [], "setup_seconds": 0.0}
        return {"enforced": True, **self._iam.report(), "setup_seconds": round(self.iam_setup_seconds, 2)}

    def hold(self, operation: str) -> contextlib.AbstractContextManager[HeldCall]:
        """Hold every emulated call to `operation` (e.g. `TerminateJobFlows`) for a fault drill."""
        if self._server is None:
            raise RuntimeError("rehearsal: the AWS emulator is not running")
        return self._server.hold(operation)

    # -- connection details ----------------------------------------------------------------------

    @property
    def airflow_connection_uri(self) -> str:
        """AIRFLOW_CONN_AWS_DEFAULT value: the node role's key, region and the emulator's endpoint."""
        query = urlencode({"region_name": self.region, "endpoint_url": self.endpoint_url})
        return f"aws://{NODE_ROLE_ACCESS_KEY}:{DUMMY_SECRET_KEY}@/?{query}"

    @property
    def pipeline_config(self) -> dict[str, Any]:
        """The `emr_pipeline` Variable (contracts §1) for the seeded resources; a fresh copy."""
        return dict(self._pipeline_config)

    @property
    def secret_ids(self) -> dict[str, str]:
        """contracts §3 node parameter name -> secret ARN."""
        return dict(self._secret_ids)

    def client(self, service: str, *, access_key: str = ADMIN_ACCESS_KEY) -> Any:
        """A boto3 client for the emulator (cached; boto3 clients are thread-safe).

        The default key is the rehearsal's own, which IAM never restricts; pass NODE_ROLE_ACCESS_KEY
        to call as the Airflow nodes do on AWS.
        """
        with self._clients_lock:
            if (service, access_key) not in self._clients:
                self._clients[(service, access_key)] = boto3.session.Session(
                    aws_access_key_id=access_key,
                    aws_secret_access_key=DUMMY_SECRET_KEY,
                    region_name=self.region,
                ).client(
                    service,
                    endpoint_url=self.endpoint_url,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
            return self._clients[(service, access_key)]

    def secret_value(self, secret_id: str) -> str:
        return self.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]

    # -- S3 --------------------------------------------------------------------------------------

    def upload(self, local_path: Path | str, s3_uri: str) -> None:
        target = S3Uri.parse(s3_uri)
        self.client("s3").upload_file(str(local_path), target.bucket, target.key)

    def upload_bytes(self, data: bytes, s3_uri: str) -> None:
        target = S3Uri.parse(s3_uri)
        self.client("s3").put_object(Bucket=target.bucket, Key=target.key, Body=data)

    def list_keys(self, s3_uri_prefix: str) -> list[str]:
        """Sorted object keys (without bucket) under the prefix."""
        prefix = S3Uri.parse(s3_uri_prefix)
        keys = []
        for page in (
            self.client("s3").get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key)
        ):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)

    def download(self, s3_uri: str, local_path: Path | str) -> None:
        source = S3Uri.parse(s3_uri)
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        self.client("s3").download_file(source.bucket, source.key, str(local_path))

    def read_published(self, output_uri: str) -> pa.Table:
        """The run the output location's pointer names, followed like any reader (docs/pipeline.md)."""
        job = _sort_job()
        base = output_uri if output_uri.endswith("/") else output_uri + "/"
        pointer = S3Uri.parse(base + job.LATEST)
        try:
            body = self.client("s3").get_object(Bucket=pointer.bucket, Key=pointer.key)["Body"].read()
        except self.client("s3").exceptions.NoSuchKey:
            raise FileNotFoundError(f"nothing published at {output_uri}: no {job.LATEST}") from None
        return self.read_parquet(base + job.published_run(body.decode("utf-8")))

    def read_parquet(self, s3_uri_prefix: str) -> pa.Table:
        """All Parquet parts under the prefix, concatenated in part-name order."""
        prefix = S3Uri.parse(s3_uri_prefix)
        parts = [key for key in self.list_keys(s3_uri_prefix) if key.endswith(".parquet")]
        if not parts:
            raise FileNotFoundError(f"no Parquet parts under {s3_uri_prefix}")
        s3 = self.client("s3")
        tables = [
            pq.read_table(io.BytesIO(s3.get_object(Bucket=prefix.bucket, Key=key)["Body"].read())) for key in parts
        ]
        return pa.concat_tables(tables, promote_options="default")

    # -- SES and EMR views -----------------------------------------------------------------------

    def sent_mails(self) -> list[dict[str, Any]]:
        backend = ses_backends[self.account_id][self.region]
        return [mail_as_dict(message) for message in list(backend.sent_messages)]

    def clusters(self) -> list[dict[str, Any]]:
        """Every emulated EMR cluster, oldest first, with its steps in submission order."""
        clusters = sorted(emulated_clusters(), key=lambda cluster: cluster.creation_datetime)
        return [
            {
                "id": cluster.id,
                "name": cluster.name,
                "state": cluster.state,
                "state_change_reason": {
                    key: value
                    for key, value in (cluster.status.get("StateChangeReason") or {}).items()
                    if value is not None
                },
                "steps": [
                    {
                        "id": step.id,
                        "name": step.name,
                        "state": step.state,
                        "args": list(step.args),
                        "action_on_failure": step.action_on_failure,
                        "state_change_reason": getattr(step, "last_state_change_reason", None),
                        "failure_details": dict(step.status.get("FailureDetails") or {}),
                        "log_dir": str(self.step_log_dir(cluster.id, step.id)),
                    }
                    for step in list(cluster.steps)
                ],
            }
            for cluster in clusters
        ]

    def step_log_dir(self, cluster_id: str, step_id: str) -> Path:
        """Local copy of the step's stdout, stderr and controller (the runner's own record)."""
        return step_log_dir(self.workdir / "emr", cluster_id, step_id)

    def steps_idle(self) -> bool:
        """True when no step is running or waiting on any non-terminated cluster."""
        return self._runner is None or self._runner.idle()
