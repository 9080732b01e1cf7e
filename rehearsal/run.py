"""The rehearsal: emulated AWS + real Airflow nodes bootstrapped by the EC2 scripts, one pipeline run checked.

``Rehearsal`` is a context manager so the tests can keep one running deployment across drills; the
CLI (``python -m rehearsal``) uses it for a single checked run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rehearsal.access_point import AccessPointMount, require_bindfs
from rehearsal.airflow_api import AirflowApi, AirflowApiError, parse_time
from rehearsal.aws.spark_env import spark_line
from rehearsal.aws.stack_template import access_point_owner, synthesized_stack
from rehearsal.dataset import DATASET
from rehearsal.db_budget import ConnectionBudget, rehearsal_budget, stack_max_connections
from rehearsal.nodes import REPO_ROOT, RehearsalHost, cluster_nodes, embedded_nodes, free_port, template_db_name
from rehearsal.private_zone import RECORD_ADDRESS, PrivateZone
from rehearsal.services import (
    RehearsalDatabase,
    RehearsalRedis,
    TlsOnlyMariaDb,
    new_database_credentials,
    require_java,
    require_mariadb_server,
    require_node,
    require_redis_server,
)
from rehearsal.supervisor import Supervisor
from stacks.start_order import start_waves

log = logging.getLogger("rehearsal")

EMR_STEPS_DIR = REPO_ROOT / "emr_steps"
# The sort job may keep the CSV header or normalise it to snake_case.
SCORE_COLUMNS = ("spending_score", "Spending Score (1-100)")
PROFILES = ("embedded", "cluster")
# A task instance try that will not change any more (up_for_retry: this try failed, another follows).
FINISHED_TASK_STATES = frozenset({"success", "failed", "upstream_failed", "skipped", "up_for_retry", "removed"})


class RehearsalFailed(RuntimeError):
    pass


@dataclass
class PipelineRun:
    """One dag_1 run and what it led to, read back from the API and the emulator."""

    dag_1: dict
    dag_2: dict | None
    task_instances: dict[str, list[dict]]
    cluster_id: str | None
    cluster_state: str | None
    new_mails: list[dict]
    log_tails: dict[str, str] = field(default_factory=dict)
    # EMR step name -> its FailureDetails (Reason / Message: the job's own error line)
    step_failures: dict[str, str] = field(default_factory=dict)

    def _ti(self, dag_id: str, task_id: str) -> dict | None:
        return next((t for t in self.task_instances.get(dag_id, []) if t["task_id"] == task_id), None)

    @staticmethod
    def _seconds(start: str | None, end: str | None) -> float | None:
        if not start or not end:
            return None
        return (parse_time(end) - parse_time(start)).total_seconds()

    @property
    def dag_1_seconds(self) -> float | None:
        return self._seconds(self.dag_1.get("start_date"), self.dag_1.get("end_date"))

    @property
    def dag_2_seconds(self) -> float | None:
        return self._seconds(self.dag_2.get("start_date"), self.dag_2.get("end_date")) if self.dag_2 else None

    @property
    def trigger_lag(self) -> float | None:
        """trigger_dag_2 done -> dag_2 running: how fast the scheduler picks up a triggered run."""
        trigger = self._ti("dag_1", "trigger_dag_2")
        if not trigger or not self.dag_2:
            return None
        lag = self._seconds(trigger.get("end_date"), self.dag_2.get("start_date"))
        return None if lag is None else max(lag, 0.0)

    @property
    def sensor_lag(self) -> float | None:
        """dag_2 finished -> wait_for_dag_2 finished: how fast dag_1 notices."""
        sensor = self._ti("dag_1", "wait_for_dag_2")
        if not sensor or not self.dag_2:
            return None
        lag = self._seconds(self.dag_2.get("end_date"), sensor.get("end_date"))
        return None if lag is None else max(lag, 0.0)

    @property
    def causes(self) -> list[str]:
        """Why the run failed, most telling first: a failed EMR step's own error line, else the failed tasks."""
        steps = [f"EMR step {name}: {details}" for name, details in self.step_failures.items()]
        if steps:
            return steps
        return [
            f"{dag_id}.{ti['task_id']} {ti['state']}"
            for dag_id, instances in self.task_instances.items()
            for ti in instances
            if ti["state"] == "failed"
        ]

    def log_report(self) -> str:
        """The log tails of every failed task and EMR step, for a person reading a failure."""
        return "\n".join(f"--- log tail of {name} ---\n{tail}" for name, tail in self.log_tails.items())

    def summary(self, profile: str) -> str:
        def fmt(value):
            return "n/a" if value is None else f"{value:.1f}s"

        return (
            f"profile={profile} dag_1={fmt(self.dag_1_seconds)} dag_2={fmt(self.dag_2_seconds)} "
            f"trigger_lag={fmt(self.trigger_lag)} sensor_lag={fmt(self.sensor_lag)}"
        )


def csv_records(path: Path) -> int | None:
    """Data records of a CSV as RFC 4180 counts them (quoted line breaks inside a field); None if unreadable."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return max(sum(1 for row in csv.reader(handle) if row) - 1, 0)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


class TaskProgress:
    """One line per finished task try of a dag_1 run and of the dag_2 run it triggered, as they finish."""

    def __init__(self, api: AirflowApi, report: Callable[[str], None]):
        self._api = api
        self._report = report
        self._seen: set[tuple] = set()

    def poll(self, dag_1_run_id: str) -> None:
        runs = [("dag_1", dag_1_run_id)]
        dag_2_run_id = self._api.xcom("dag_1", dag_1_run_id, "trigger_dag_2", "trigger_run_id")
        if dag_2_run_id:
            runs.append(("dag_2", dag_2_run_id))
        for dag_id, run_id in runs:
            try:
                instances = self._api.task_instances(dag_id, run_id)
            except AirflowApiError:  # dag_2's run may not be created yet
                continue
            for ti in sorted(instances, key=lambda t: t.get("end_date") or ""):
                key = (dag_id, run_id, ti["task_id"], ti.get("map_index"), ti.get("try_number"))
                if ti["state"] in FINISHED_TASK_STATES and key not in self._seen:
                    self._seen.add(key)
                    took = f" in {ti['duration']:.1f}s" if ti.get("duration") is not None else ""
                    attempt = f" (try {ti['try_number']})" if (ti.get("try_number") or 1) > 1 else ""
                    self._report(f"{dag_id}.{ti['task_id']} {ti['state']}{took}{attempt}")


class Rehearsal:
    # poll_interval: how often the sensors (deferrable, as deployed) check; short so a run stays short.
    # api_port / flower_port: fixed ports for a person to open (--serve); default: any free port.
    def __init__(
        self,
        profile: str,
        *,
        workdir: Path | None = None,
        scheduler_count: int = 1,
        keep: bool = False,
        venv: Path | None = None,
        poll_interval: float = 1.0,
        dataset: Path = DATASET,
        api_port: int | None = None,
        flower_port: int | None = None,
    ):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        self.profile = profile
        self.keep = keep
        self.scheduler_count = scheduler_count
        self.venv = venv or Path(sys.prefix)
        self.poll_interval = poll_interval
        self.dataset = Path(dataset).resolve()
        self.api_port = api_port
        self.flower_port = flower_port
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"rehearsal-{profile}-")).resolve()
        self._saved_tmpdir: tuple[str | None, str | None] | None = None
        self.aws = None
        self.nodes: list[RehearsalHost] = []
        self.supervisor: Supervisor | None = None
        self.api: AirflowApi | None = None
        self._mariadb: TlsOnlyMariaDb | None = None
        self._database: RehearsalDatabase | None = None
        self._redis: RehearsalRedis | None = None
        self._shared_fs: AccessPointMount | None = None
        # cluster profile: the stack's private DNS zone as the nodes resolve it
        self.private_zone: PrivateZone | None = None
        # cluster profile: what stacks/connection_budget.py allows the rendered nodes
        self.connection_budget: ConnectionBudget | None = None
        self._units: dict[str, list[str]] = {}
        self.bootstrap_seconds: dict[str, dict[str, float]] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Rehearsal:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _check_machine(self) -> None:
        if not self.dataset.is_file():
            raise RehearsalFailed(f"dataset {self.dataset} is not a file")
        require_java()
        require_node()
        require_bindfs()  # both profiles: the EFS folder has the access point's semantics
        if self.profile == "cluster":
            require_mariadb_server()
            require_redis_server()

    def start(self) -> None:
        from rehearsal.aws import LocalAws

        self._check_machine()
        self._use_private_tmpdir()
        log.info(
            "rehearsal: workdir %s (%s)",
            self.workdir,
            "kept" if self.keep or not self._own_workdir else "deleted at exit; --keep keeps it",
        )
        started = time.monotonic()
        log.info("rehearsal: starting the AWS emulator (moto on loopback, local EMR steps with Spark)")
        self.aws = LocalAws(self.workdir / "aws", dataset=self.dataset, emr_steps_dir=EMR_STEPS_DIR, poll_interval=0.5)
        self.aws.start()
        log.info(
            "rehearsal: AWS emulator ready in %.1fs, input %s uploaded to %s",
            time.monotonic() - started,
            self.dataset,
            self.aws.pipeline_config["input_uri"],
        )
        self.original_input = self.workdir / "input.csv"
        self.aws.download(self.aws.pipeline_config["input_uri"], self.original_input)
        if self.profile == "cluster":
            self.private_zone = PrivateZone.of_template(self.workdir / "dns" / "hosts", synthesized_stack().template)
            self.private_zone.start()
            log.info("rehearsal: starting a TLS-only MariaDB server and a TLS + AUTH Redis for this run")
            self._start_services()
        self.create_nodes()
        self.supervisor = Supervisor(self.workdir / "logs")
        self.boot_nodes()
        password = self.aws.secret_value(self.aws.secret_ids["ADMIN_PASSWORD_SECRET_ID"])
        self.api = AirflowApi(self.api_url, self.admin_user, password)
        self.api.login()
        log.info("rehearsal: waiting for the dag-processor to parse dag_1 and dag_2")
        for dag_id in ("dag_1", "dag_2"):
            self.api.wait_for_dag(dag_id, timeout=180)
            self.api.unpause(dag_id)
        if self._database:
            # The budget models the services' pools; the boot's CLI sessions (migration, health gates) fall
            # in RDS's reserved connections. So the peak is counted from here on.
            self._database.reset_connection_peak()

    def create_nodes(self) -> None:
        """The profile's nodes, and the EFS folder they share (workdir/efs, their DAGS_FOLDER's parent as
        /mnt/efs/airflow is on EC2) mounted with the synthesized template's access-point semantics."""
        if self.profile == "cluster":
            self.nodes = cluster_nodes(
                self.aws,
                self.workdir,
                self.venv,
                self.poll_interval,
                db_port=self._mariadb.port,
                db_ca_bundle=self._mariadb.ca_bundle,
                redis_port=self._redis.port,
                redis_ca_bundle=self._redis.ca_bundle,
                scheduler_count=self.scheduler_count,
                api_port=self.api_port,
                flower_port=self.flower_port,
            )
            for node in self.nodes:
                node.command_prefix = self.private_zone.command_prefix
            self.connection_budget = rehearsal_budget(self.nodes)
        else:
            self.nodes = embedded_nodes(self.aws, self.workdir, self.venv, self.poll_interval, api_port=self.api_port)
        efs = self.workdir / "efs"
        outside = [node.name for node in self.nodes if not Path(node.params["DAGS_FOLDER"]).is_relative_to(efs)]
        if outside:
            raise RehearsalFailed(f"the DAGS_FOLDER of {', '.join(outside)} is not on the rehearsal's EFS ({efs})")
        uid, gid = access_point_owner(synthesized_stack().template)
        log.info(
            "rehearsal: mounting %s as the EFS access point presents it (uid %s, gid %s, chown refused)", efs, uid, gid
        )
        self._shared_fs = AccessPointMount(self.workdir / "efs-backing", efs, uid, gid).mount()

    @property
    def api_node(self) -> RehearsalHost:
        return next(
            n for n in self.nodes if n.role == "api-server" or "api-server" in n.params.get("COLOCATED_ROLES", "")
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_node.params['API_SERVER_PORT']}"

    # The FAB user the api-server unit keeps in step with the admin-password secret (and Flower's user).
    admin_user = "admin"

    def _passwords_file(self, name: str, secret_key: str) -> Path:
        """{user: password} from the emulated Secrets Manager (where a deployment keeps it), mode 0600."""
        path = self.workdir / f"{name}-password.json"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(json.dumps({self.admin_user: self.aws.secret_value(self.aws.secret_ids[secret_key])}))
        return path

    @property
    def passwords_file(self) -> Path:
        return self._passwords_file("airflow", "ADMIN_PASSWORD_SECRET_ID")

    @property
    def flower_passwords_file(self) -> Path:
        return self._passwords_file("flower", "FLOWER_PASSWORD_SECRET_ID")

    @property
    def flower_url(self) -> str | None:
        worker = next((n for n in self.nodes if n.role == "worker"), None)
        return f"http://127.0.0.1:{worker.params['FLOWER_PORT']}" if worker else None

    def _use_private_tmpdir(self) -> None:
        """Everything the rehearsal starts (bootstrap, Airflow, Spark steps) keeps its temporary files in
        the workdir, so nothing is left in the machine's /tmp (Hive leaves one `<session>_resources`
        directory per Spark SQL session there)."""
        tmp = self.workdir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        self._saved_tmpdir = (os.environ.get("TMPDIR"), tempfile.tempdir)
        os.environ["TMPDIR"] = str(tmp)
        tempfile.tempdir = str(tmp)

    def _restore_tmpdir(self) -> None:
        if self._saved_tmpdir is None:
            return
        environ_value, module_value = self._saved_tmpdir
        if environ_value is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = environ_value
        tempfile.tempdir = module_value
        self._saved_tmpdir = None

    def _start_services(self) -> None:
        secrets = self.aws.client("secretsmanager")
        credentials = new_database_credentials()
        # As RDS does: the master secret names the user; here a fresh one per run.
        secrets.put_secret_value(
            SecretId=self.aws.secret_ids["DB_SECRET_ID"],
            SecretString=json.dumps({"username": credentials["username"], "password": credentials["password"]}),
        )
        # Our own server, so its connection counter is this run's: RDS's max_connections for the stack's class.
        self._mariadb = TlsOnlyMariaDb(self.workdir / "mariadb", free_port(), max_connections=stack_max_connections())
        self._mariadb.start()
        # The template's database name: the server is this run's own, so the name need not differ.
        self._database = self._mariadb.database(
            name=template_db_name(), username=credentials["username"], password=credentials["password"]
        )
        self._database.create()
        redis_password = self.aws.secret_value(self.aws.secret_ids["REDIS_AUTH_SECRET_ID"])
        self._redis = RehearsalRedis(self.workdir / "redis", redis_password, free_port(), tls=True)
        self._redis.start()

    def boot_nodes(self) -> None:
        """As CloudFormation creates the instances: a node is bootstrapped only after every node it starts
        after (stacks/start_order.py, the template's DependsOn) has passed its health gate; the nodes of one
        wave start together. A DNS record of the template appears once the instances it depends on signalled
        (rehearsal/private_zone.py); a node that failed resolving it earlier fails the boot naming the record."""
        by_role: dict[str, list[RehearsalHost]] = {}
        for node in self.nodes:
            by_role.setdefault(node.role, []).append(node)
        try:
            for wave in start_waves(by_role):
                self._bootstrap_wave([node for role in wave for node in by_role[role]])
        finally:
            for node in self.nodes:
                self.bootstrap_seconds[node.name] = dict(node.timings)

    def _bootstrap_wave(self, nodes: list[RehearsalHost]) -> None:
        # install and configure one node at a time: the rehearsal's nodes share one venv.
        for node in nodes:
            node.write_node_env()
            for phase in ("install", "configure"):
                log.info("rehearsal: %s: bootstrap %s", node.name, phase)
                node.phase(phase)
        log.info(
            "rehearsal: starting %s (database migration, then every process until healthy)",
            ", ".join(node.name for node in nodes),
        )
        errors: list[BaseException] = []

        def start(node: RehearsalHost) -> None:
            try:
                node.phase("start")
                self._units[node.name] = [
                    self.supervisor.start(node.name, unit, node.command_prefix) for unit in node.unit_files()
                ]
                node.phase("health")
                log.info(
                    "rehearsal: %s healthy after %.1fs (%s)",
                    node.name,
                    node.timings["start"] + node.timings["health"],
                    ", ".join(unit.split("/", 1)[1] for unit in self._units[node.name]),
                )
                self._signalled(node)
            except BaseException as error:  # reported below, from the main thread
                errors.append(error)

        threads = [threading.Thread(target=start, args=(n,), name=f"bootstrap-{n.name}") for n in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            reason = self.private_zone.explain(str(errors[0])) if self.private_zone else None
            if reason:
                raise RehearsalFailed(f"{reason}\n{errors[0]}") from errors[0]
            raise errors[0]

    def _signalled(self, node: RehearsalHost) -> None:
        """The node's instance is CREATE_COMPLETE: CloudFormation goes on with what waited for it, its DNS record."""
        if self.private_zone is None:
            return
        for record in self.private_zone.signalled(node.role):
            log.info("rehearsal: DNS record created: %s -> %s (%s)", record.name, RECORD_ADDRESS, record.logical_id)

    def stop(self) -> None:
        if self.api:
            self.api.close()
        if self.supervisor:
            self.supervisor.stop_all()
        if self._shared_fs:
            self._shared_fs.unmount()
        if self._redis:
            self._redis.stop()
        if self._mariadb:  # the server is this run's own: its data directory goes with the workdir
            self._mariadb.stop()
        if self.aws:
            self.aws.stop()
            self.aws = None
        self._restore_tmpdir()
        if self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- one pipeline run -----------------------------------------------------------------------
    def units(self, node: str) -> list[str]:
        return self._units[node]

    def trigger(self) -> str:
        return self.api.trigger("dag_1")["dag_run_id"]

    def wait(self, run_id: str, timeout: float = 900, on_poll=None) -> PipelineRun:
        dag_1 = self.api.wait_for_run("dag_1", run_id, timeout, on_poll=on_poll)
        return self.collect(dag_1)

    def collect(self, dag_1: dict) -> PipelineRun:
        run_id = dag_1["dag_run_id"]
        tis = {"dag_1": self.api.task_instances("dag_1", run_id)}
        dag_2 = None
        dag_2_run_id = self.api.xcom("dag_1", run_id, "trigger_dag_2", "trigger_run_id")
        if dag_2_run_id:
            dag_2 = self.api.wait_for_run("dag_2", dag_2_run_id, timeout=120)
            tis["dag_2"] = self.api.task_instances("dag_2", dag_2_run_id)
        cluster_id = self.api.xcom("dag_1", run_id, "create_emr_cluster", "return_value")
        cluster = next((c for c in self.aws.clusters() if c["id"] == cluster_id), None)
        if cluster is None and cluster_id:
            described = self.aws.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]
            cluster = {"id": cluster_id, "state": described["Status"]["State"], "steps": []}
        mails = [m for m in self.aws.sent_mails() if run_id in m["subject"]]
        run = PipelineRun(
            dag_1=dag_1,
            dag_2=dag_2,
            task_instances=tis,
            cluster_id=cluster_id,
            cluster_state=cluster["state"] if cluster else None,
            new_mails=mails,
        )
        for step in (cluster or {}).get("steps", []):
            if step["state"] == "FAILED":
                details = step["failure_details"]
                found = [text for text in (details.get("Reason"), details.get("Message")) if text]
                # With --deploy-mode cluster the job's own error line is in the failure summary it wrote
                # under the cluster's log prefix (emr_pipeline.steps.failure_summary_uri), not in FailureDetails.
                found[:0] = self._failure_summaries(cluster_id, step["name"])
                run.step_failures[step["name"]] = " / ".join(dict.fromkeys(found)) or "no details given"
                stderr = Path(step["log_dir"]) / "stderr"
                tail = stderr.read_text(errors="replace").splitlines()[-30:] if stderr.is_file() else []
                run.log_tails[f"EMR step {step['name']}"] = "\n".join([str(step["failure_details"]), *tail])
        for dag_id, instances in tis.items():
            dag_run_id = run_id if dag_id == "dag_1" else dag_2_run_id
            for ti in instances:
                if ti["state"] in ("failed", "upstream_failed") and ti.get("try_number"):
                    text = self.api.task_log(dag_id, dag_run_id, ti["task_id"], ti["try_number"])
                    run.log_tails[f"{dag_id}.{ti['task_id']}"] = "\n".join(text.splitlines()[-30:])
        return run

    def success_problems(self, run: PipelineRun) -> list[str]:
        """What a good run must do: both DAGs succeed, the cluster ends, one SUCCEEDED mail, sorted output."""
        problems = self._outcome_problems(run, "success", "SUCCEEDED")
        return (problems or self.output_problems()) + self.connection_problems()

    def connection_peak(self) -> int | None:
        """The most metadata-DB connections open at once since the nodes were healthy (cluster profile; the
        count includes the rehearsal's own session that reads it)."""
        return self._database.connection_peak() if self._database else None

    def connection_problems(self) -> list[str]:
        """The database saw more connections at once than stacks/connection_budget.py allows the nodes."""
        if self.connection_budget is None:
            return []
        peak = self.connection_peak()
        if peak <= self.connection_budget.total:
            return []
        return [
            f"the metadata DB saw {peak} connections at once, more than the {self.connection_budget.total} "
            f"stacks/connection_budget.py allows the rendered nodes ({self.connection_budget.detail()}): "
            "the budget undercounts a process's pools"
        ]

    def enforcement_facts(self) -> str:
        """What this run enforced, for the summary line: IAM calls and denials, the steps' Spark line, boot order,
        TLS to the database and the broker, and the database's peak connections against the budget."""
        iam = self.aws.iam_report()
        release = self.aws.pipeline_config["release_label"]
        iam_fact = f"iam=enforced calls={iam['calls']} denied={len(iam['denied'])}" if iam["enforced"] else "iam=off"
        efs = "access-point" if self._shared_fs and self._shared_fs.mounted else "none"
        facts = f"{iam_fact} spark={spark_line(release)} ({release}) boot=cfn-order cfn-init-env=template efs={efs}"
        if self.private_zone is not None:
            facts += " dns=record-gated"
        if self.connection_budget is None:  # embedded: SQLite and no broker, nothing on the wire
            return f"{facts} tls=n/a"
        return (
            f"{facts} node-env=template tls=on db_connections={self.connection_peak()}/{self.connection_budget.total}"
        )

    def _failure_summaries(self, cluster_id: str, step_name: str) -> list[str]:
        log_uri = self.aws.pipeline_config["log_uri"].rstrip("/") + f"/{cluster_id}/"
        bucket = log_uri.removeprefix("s3://").split("/", 1)[0]
        s3 = self.aws.client("s3")
        return [
            s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode(errors="replace").strip()
            for key in self.aws.list_keys(log_uri)
            if key.endswith(f"/{step_name}.txt")
        ]

    def input_rows(self) -> int | None:
        return csv_records(self.original_input)

    def output_rows(self) -> int | None:
        try:
            return self.aws.read_parquet(self.aws.pipeline_config["output_uri"]).num_rows
        except FileNotFoundError:
            return None

    def save_output(self) -> Path:
        """Copy the output Parquet out of the emulated S3 into the workdir, for a person to open."""
        output_uri = self.aws.pipeline_config["output_uri"]
        bucket_prefix = output_uri.removeprefix("s3://")
        target = self.workdir / "output" / bucket_prefix
        bucket = bucket_prefix.split("/", 1)[0]
        for key in self.aws.list_keys(output_uri):
            self.aws.download(f"s3://{bucket}/{key}", self.workdir / "output" / bucket / key)
        return target

    def save_mails(self, run: PipelineRun) -> list[Path]:
        """Write the run's outcome mails (as the emulated SES received them) into the workdir."""
        saved = []
        for number, mail in enumerate(run.new_mails, start=1):
            path = self.workdir / "mail" / f"outcome-{number}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"<!-- Subject: {mail['subject']} -->\n{mail['body']}")
            saved.append(path)
        return saved

    def output_problems(self) -> list[str]:
        table = self.aws.read_published(self.aws.pipeline_config["output_uri"])
        expected = self.input_rows()
        if table.num_rows != expected:
            return [f"output has {table.num_rows} rows, expected {expected}"]
        column = next((c for c in SCORE_COLUMNS if c in table.column_names), None)
        if column is None:
            return [f"output has no spending score column (has {', '.join(table.column_names)})"]
        scores = table.column(column).to_pylist()
        if None in scores:
            return [f"output has empty {column} values"]
        return [] if scores == sorted(scores) else [f"output is not sorted ascending by {column}"]

    def failure_problems(self, run: PipelineRun) -> list[str]:
        """What a failed pipeline must still do: fail both DAGs, terminate the cluster, mail once."""
        return self._outcome_problems(run, "failed", "FAILED") + self.connection_problems()

    @staticmethod
    def _outcome_problems(run: PipelineRun, dag_state: str, verdict: str) -> list[str]:
        problems = []
        for dag_id, dag_run in (("dag_1", run.dag_1), ("dag_2", run.dag_2)):
            state = dag_run["state"] if dag_run else "never triggered"
            if state != dag_state:
                problems.append(f"{dag_id} ended {state}, expected {dag_state}")
        if run.cluster_state != "TERMINATED":
            problems.append(f"EMR cluster {run.cluster_id} is {run.cluster_state}, expected TERMINATED")
        verdicts = [m["subject"] for m in run.new_mails]
        if len(verdicts) != 1 or verdict not in verdicts[0]:
            problems.append(f"expected exactly one {verdict} mail, got {verdicts}")
        return problems

    def restore_input(self) -> None:
        self.aws.upload(self.original_input, self.aws.pipeline_config["input_uri"])
