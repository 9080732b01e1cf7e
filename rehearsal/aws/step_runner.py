"""The local EMR step runner: executes the steps of moto's emulated clusters with local Spark.

moto accepts RunJobFlow/AddJobFlowSteps but never runs a step. This thread watches moto's EMR
backend and, per cluster and one step at a time (StepConcurrencyLevel 1, like the pipeline's
clusters), runs each pending step's real command against a local mirror of the emulated S3, then
records the outcome on moto's objects so DescribeStep/DescribeCluster report it like EMR would.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.emr.models import Cluster, Step

from rehearsal.aws import emr_state
from rehearsal.aws.emr_launch import EmrRoles, profile_problem
from rehearsal.aws.emrfs_writes import WriteRecorder
from rehearsal.aws.s3_mirror import S3Mirror
from rehearsal.aws.s3_uri import S3Uri
from rehearsal.aws.spark_env import SparkEnvironment
from rehearsal.aws.step_commands import StepCommand, local_argv, parse_step

log = logging.getLogger("rehearsal.aws")

_WAITING_STEP_STATES = ("PENDING", "RUNNING")  # moto marks a cluster's first step RUNNING on creation
# Most to least telling: a Spark SQL error class, an exception/"error:" line, any mention of an error.
_ERROR_LINES = (
    re.compile(r"^\[[A-Z][A-Z0-9_.]{3,}\]"),
    re.compile(r"^([\w.$]+(Error|Exception)\b|error:)", re.IGNORECASE),
    re.compile(r"error|exception", re.IGNORECASE),
)
_LOG_NOISE = re.compile(r"(\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN) )|WARNING: Using incubator modules")
_KILL_GRACE_SECONDS = 10
# Steps are short local jobs on small data: C1-only JIT and the serial GC start the JVM about
# 40% faster than the defaults, whose C2 compiler threads compete for a small machine's cores.
_SHORT_LIVED_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


@dataclass(frozen=True)
class StepOutcome:
    state: str
    reason: str | None = None
    exit_status: int | None = None


class _ClusterTerminated(Exception):
    pass


class StepRunner:
    """Background runner; `start()` once, `stop()` kills running steps and joins the threads."""

    def __init__(
        self,
        *,
        clusters: Callable[[], list[Cluster]],
        clients: Callable[..., Any],
        mirror_root: Path,
        instance_access_key: Callable[[str], str | None],
        emr_roles: EmrRoles | None,
        workdir: Path,
        poll_interval: float,
        spark_for_release: Callable[[str], SparkEnvironment],
        step_env: dict[str, str],
    ):
        self._clusters = clusters
        self._clients = clients  # (service, access_key=None): None is the rehearsal's own key
        self._mirror_root = mirror_root
        # The key signing as the instance-profile role (None: the rehearsal has no policies for it).
        self._instance_access_key = instance_access_key
        self._emr_roles = emr_roles  # None: IAM not enforced
        self._cluster_keys: dict[str, str] = {}
        self._workdir = workdir
        self._poll_interval = poll_interval
        # Each cluster's steps run on its release's Spark line (spark_env.SPARK_LINES).
        self._spark_for_release = spark_for_release
        self._step_env = step_env
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._claimed: set[str] = set()
        self._validated: set[str] = set()
        self._ended: dict[str, str] = {}
        self._cluster_locations: dict[str, dict[S3Uri, None]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._thread = threading.Thread(target=self._loop, name="emr-step-runner", daemon=True)
        self._log4j2 = workdir / "log4j2.properties"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._log4j2.write_text(_LOG4J2)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            processes = list(self._processes.values())
            workers = list(self._workers.values())
        for process in processes:
            _kill_process_group(process)
        for worker in workers:
            worker.join(timeout=_KILL_GRACE_SECONDS + 5)

    def cluster_dir(self, cluster_id: str) -> Path:
        return self._workdir / cluster_id

    def step_log_dir(self, cluster_id: str, step_id: str) -> Path:
        return step_log_dir(self._workdir, cluster_id, step_id)

    def container_log_dir(self, cluster_id: str, step_id: str) -> Path:
        """Where a cluster-mode driver's stdout/stderr go (EMR: the YARN container logs)."""
        return self._workdir / cluster_id / "containers" / _application_id(step_id) / "driver"

    def idle(self) -> bool:
        """True when no step runs and no emulated cluster has a step waiting to run."""
        with self._lock:
            if any(worker.is_alive() for worker in self._workers.values()):
                return False
            return not any(self._next_step(cluster) for cluster in self._clusters() if not self._terminated(cluster))

    # -- polling ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.wait(self._poll_interval):
            try:
                clusters = self._clusters()
            except Exception:  # e.g. moto's state being reset under us: try again next poll
                log.exception("step runner: cannot list the emulated clusters")
                continue
            for cluster in clusters:
                try:
                    self._tend(cluster)
                except Exception:  # one odd cluster must not stop the runner for the others
                    log.exception("step runner: cannot tend cluster %s", cluster.id)

    def _tend(self, cluster: Cluster) -> None:
        if cluster.id not in self._validated:
            problem = self._validation_problem(cluster)
            self._validated.add(cluster.id)
            if problem:
                log.warning("step runner: cluster %s fails validation: %s", cluster.id, problem)
                emr_state.terminate_cluster(cluster, code="VALIDATION_ERROR", message=problem, with_errors=True)
        with self._lock:
            if self._terminated(cluster):
                self._cancel_waiting_steps(cluster, "Cluster terminated before the step started")
                return
            worker = self._workers.get(cluster.id)
            if worker is not None and worker.is_alive():
                return
            if self._next_step(cluster) is not None:
                worker = threading.Thread(
                    target=self._work, args=(cluster,), name=f"emr-steps-{cluster.id}", daemon=True
                )
                self._workers[cluster.id] = worker
                worker.start()
            elif cluster.state == "RUNNING":
                emr_state.set_cluster_state(cluster, "WAITING")

    def _terminated(self, cluster: Cluster) -> bool:
        """Terminated for good: moto's AddJobFlowSteps flips a terminated cluster back to RUNNING."""
        if emr_state.is_terminated(cluster):
            self._ended[cluster.id] = cluster.state
            return True
        if cluster.id in self._ended or cluster.end_datetime is not None:  # moto sets it on terminate
            cluster.state = self._ended.get(cluster.id, "TERMINATED")
            return True
        return False

    def _next_step(self, cluster: Cluster) -> Step | None:
        for step in list(cluster.steps):
            if step.id not in self._claimed and step.state in _WAITING_STEP_STATES:
                return step
        return None

    def _cancel_waiting_steps(self, cluster: Cluster, reason: str) -> None:
        for step in list(cluster.steps):
            if step.id not in self._claimed and step.state in _WAITING_STEP_STATES:
                self._claimed.add(step.id)
                emr_state.finish_step(step, "CANCELLED", reason=reason)

    # -- one cluster's step queue ----------------------------------------------------------------

    def _work(self, cluster: Cluster) -> None:
        while not self._stopping.is_set():
            with self._lock:
                step = None if self._terminated(cluster) else self._next_step(cluster)
                if step is None:
                    self._settle_idle(cluster)
                    return
                self._claimed.add(step.id)
                emr_state.start_step(step)
                emr_state.set_cluster_state(cluster, "RUNNING")
            try:
                outcome = self._run_step(cluster, step)
            except BaseException as exc:  # never leave a step RUNNING, whatever happened
                outcome = StepOutcome("FAILED", f"step runner error: {type(exc).__name__}: {exc}")
                log.exception("step runner: %s %s crashed", cluster.id, step.id)
            with self._lock:
                self._finish(cluster, step, outcome)

    def _finish(self, cluster: Cluster, step: Step, outcome: StepOutcome) -> None:
        failure = None
        if outcome.state == "FAILED":
            reason = outcome.reason or "Unknown Error."
            failure = {
                "Reason": reason,
                "Message": reason
                if outcome.exit_status is None
                else f"Step {step.id} failed with exit status {outcome.exit_status}",
                "LogFile": self._log_location(cluster, step, "stderr") or "",
            }
        emr_state.finish_step(step, outcome.state, reason=outcome.reason, failure=failure)
        log.info("step runner: %s %s (%s) -> %s", cluster.id, step.id, step.name, outcome.state)
        if outcome.state == "FAILED":
            self._apply_action_on_failure(cluster, step)

    def _settle_idle(self, cluster: Cluster) -> None:
        if self._terminated(cluster):
            self._cancel_waiting_steps(cluster, "Cluster terminated before the step started")
        elif not cluster.keep_job_flow_alive_when_no_steps and cluster.steps:
            failed = any(step.state == "FAILED" for step in cluster.steps)
            emr_state.terminate_cluster(
                cluster,
                code="ALL_STEPS_COMPLETED",
                message="Steps completed with errors" if failed else "Steps completed",
                with_errors=failed,
            )
        else:
            emr_state.set_cluster_state(cluster, "WAITING")

    def _apply_action_on_failure(self, cluster: Cluster, step: Step) -> None:
        action = step.action_on_failure or "TERMINATE_CLUSTER"
        if action == "CONTINUE":
            return
        self._cancel_waiting_steps(cluster, f"Cancelled because step {step.id} failed ({action})")
        if action in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW") and not cluster.termination_protected:
            emr_state.terminate_cluster(
                cluster, code="STEP_FAILURE", message="Shut down as step failed", with_errors=True
            )

    # -- one step --------------------------------------------------------------------------------

    def _run_step(self, cluster: Cluster, step: Step) -> StepOutcome:
        log_dir = self.step_log_dir(cluster.id, step.id)
        log_dir.mkdir(parents=True, exist_ok=True)
        stdout_path, stderr_path = log_dir / "stdout", log_dir / "stderr"
        controller = log_dir / "controller"
        controller.write_text(f"step {step.id} ({step.name}): jar={step.jar} args={step.args!r}\n")
        try:
            command = parse_step(step.jar, step.args)
            locations = self._locations_for(cluster, command)
            mirror = self._mirror(cluster)
            before = mirror.pull(locations)
            argv = self._argv(command, cluster)
            with controller.open("a") as handle:
                handle.write(f"local command: {shlex.join(argv)}\n")
            # --deploy-mode cluster: the driver's output goes to its YARN container's logs, and the
            # step's own output is spark-submit's client report only, as on EMR.
            driver_dir = self.container_log_dir(cluster.id, step.id) if command.driver_in_cluster else None
            if driver_dir is not None:
                driver_dir.mkdir(parents=True, exist_ok=True)
                stdout_path.touch()  # the step still has its (client's) stdout, as on EMR
                run_out, run_err = driver_dir / "stdout", driver_dir / "stderr"
            else:
                run_out, run_err = stdout_path, stderr_path
            with WriteRecorder(self._mirror_root) as recorder:
                try:
                    status = self._execute(cluster, step, argv, run_out, run_err)
                    if driver_dir is not None:
                        _write_client_report(stderr_path, step.id, status)
                        status = 0 if status == 0 else 1  # spark-submit's own exit status for a failed application
                finally:
                    pushed = mirror.push(locations, before, recorder.written())
                with controller.open("a") as handle:
                    handle.write(f"uploaded: {pushed.uploaded}\ndeleted: {pushed.deleted}\n")
            with controller.open("a") as handle:
                handle.write(f"exit status: {status}\n")
            if status == 0:
                return StepOutcome("COMPLETED", exit_status=0)
            return StepOutcome("FAILED", failure_reason(stdout_path, stderr_path, status), exit_status=status)
        except _ClusterTerminated:
            if self._stopping.is_set():
                return StepOutcome("CANCELLED", "The emulator stopped while the step was running")
            return StepOutcome("CANCELLED", "Cluster terminated while the step was running")
        except Exception as exc:  # the step fails, the runner lives on
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("step runner: %s %s failed before/after running: %s", cluster.id, step.id, reason)
            with stderr_path.open("a") as handle:
                handle.write(f"rehearsal step runner: {reason}\n")
            return StepOutcome("FAILED", reason)
        finally:
            self._publish_logs(cluster, step, (stdout_path, stderr_path, controller))
            driver_dir = self.container_log_dir(cluster.id, step.id)
            if driver_dir.is_dir():
                self._publish_logs(
                    cluster, step, tuple(driver_dir.iterdir()), folder=f"containers/{_application_id(step.id)}/driver"
                )

    def _locations_for(self, cluster: Cluster, command: StepCommand) -> list[S3Uri]:
        """This step's s3:// locations plus those of the cluster's earlier steps.

        A later step may reach an earlier step's location only through the metastore (a table's
        LOCATION), so those are kept in sync too.
        """
        known = self._cluster_locations.setdefault(cluster.id, {})
        for location in command.s3_locations():
            known.setdefault(location, None)
        return list(known)

    def _instance_key(self, cluster: Cluster) -> str:
        """The access key of the role in the cluster's instance profile (resolved at validation)."""
        key = self._cluster_keys.get(cluster.id)
        if key is None:
            raise RuntimeError(f"cluster {cluster.id} has no instance-profile role the rehearsal can sign as")
        return key

    def _mirror(self, cluster: Cluster) -> S3Mirror:
        """EMRFS on this cluster: every S3 call signed as its instance-profile role."""
        return S3Mirror(self._clients("s3", access_key=self._instance_key(cluster)), self._mirror_root)

    def _validation_problem(self, cluster: Cluster) -> str | None:
        """What real EMR would reject at cluster start that moto accepts (VALIDATION_ERROR)."""
        iam = self._clients("iam")
        problem = _validation_problem(cluster, iam, self._clients("ec2"))
        if problem:
            return problem
        profile = (cluster.role or "").rsplit("/", 1)[-1]
        roles = [
            role["RoleName"]
            for role in iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
        ]
        problem = profile_problem(profile, roles)
        if problem:
            return problem
        (role,) = roles
        if self._emr_roles is not None:
            tags = {tag["Key"]: tag["Value"] for tag in cluster.tags}
            service_role = (cluster.service_role or "").rsplit("/", 1)[-1]
            problem = self._emr_roles.start_problem(
                service_role=service_role, instance_role=role, tags=tags, cluster_id=cluster.id
            )
            if problem:
                return problem
        key = self._instance_access_key(role)
        if key is None:
            return f"The rehearsal has no credentials for instance role {role}"
        self._cluster_keys[cluster.id] = key
        return None

    def _argv(self, command: StepCommand, cluster: Cluster) -> list[str]:
        home = self.cluster_dir(cluster.id)
        confs = {
            "spark.sql.catalogImplementation": "hive",
            "spark.sql.warehouse.dir": str(home / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true"
            ),
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        }
        spark = self._spark_for_release(cluster.release_label)
        return local_argv(
            command,
            spark_sql=str(spark.spark_sql),
            spark_submit=str(spark.spark_submit),
            cluster_confs=confs,
            to_local=self._mirror(cluster).to_local,
        )

    def _execute(
        self,
        cluster: Cluster,
        step: Step,
        argv: list[str],
        stdout_path: Path,
        stderr_path: Path,
    ) -> int:
        home = self.cluster_dir(cluster.id)
        # Only the emulator's endpoint and dummy keys: no profile or session token of the caller.
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env = self._spark_for_release(cluster.release_label).process_env(
            {**inherited, **self._step_env, "AWS_ACCESS_KEY_ID": self._instance_key(cluster)}
        )
        # Driver JVM options without touching spark.driver.extraJavaOptions, which a step may set.
        # The emulated node's own scratch space: Hive leaves a `<session>_resources` directory per
        # session in java.io.tmpdir, which would otherwise pile up in the machine's /tmp.
        scratch = home / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(scratch)
        env["SPARK_SUBMIT_OPTS"] = (
            f"-Djava.io.tmpdir={scratch} "
            f"-Dderby.system.home={home} -Dderby.stream.error.file={home / 'derby.log'} "
            f"-Dlog4j2.configurationFile=file:{self._log4j2} {_SHORT_LIVED_JVM_OPTIONS}"
        )
        with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=self.step_log_dir(cluster.id, step.id),
                env=env,
                start_new_session=True,
            )
            with self._lock:
                self._processes[step.id] = process
            with (self.step_log_dir(cluster.id, step.id) / "controller").open("a") as handle:
                handle.write(f"process group: {process.pid}\n")  # for cleanup should the harness be SIGKILLed
            try:
                while True:
                    try:
                        status = process.wait(timeout=self._poll_interval)
                    except subprocess.TimeoutExpired:
                        if self._terminated(cluster) or self._stopping.is_set():
                            _kill_process_group(process)
                            raise _ClusterTerminated() from None
                        continue
                    if status != 0 and (self._terminated(cluster) or self._stopping.is_set()):
                        raise _ClusterTerminated()  # killed by stop() or by the termination
                    return status
            finally:
                with self._lock:
                    self._processes.pop(step.id, None)

    def _log_location(self, cluster: Cluster, step: Step, name: str, folder: str | None = None) -> str | None:
        if not cluster.log_uri:
            return None
        base = cluster.log_uri if cluster.log_uri.endswith("/") else cluster.log_uri + "/"
        return f"{base}{cluster.id}/{folder or f'steps/{step.id}'}/{name}"

    def _publish_logs(self, cluster: Cluster, step: Step, files: tuple[Path, ...], folder: str | None = None) -> None:
        s3 = self._clients("s3", access_key=self._instance_key(cluster))  # EMR's log pusher runs on the instances
        for path in files:
            uri = self._log_location(cluster, step, path.name, folder)
            if uri is None or not path.exists():
                continue
            target = S3Uri.parse(uri)
            try:
                s3.upload_file(str(path), target.bucket, target.key)
            except Exception as exc:  # like EMR, an unwritable LogUri loses logs, not the step
                log.warning("step runner: cannot upload %s to %s: %s", path, uri, exc)


def _application_id(step_id: str) -> str:
    return f"application_{step_id.replace('-', '_')}"


def _write_client_report(stderr_path: Path, step_id: str, status: int) -> None:
    """What spark-submit's YARN client prints for a cluster-mode application, in place of the driver's output."""
    application = _application_id(step_id)
    final = "SUCCEEDED" if status == 0 else "FAILED"
    lines = [f"INFO Client: Application report for {application} (state: FINISHED, final status: {final})"]
    if status != 0:
        lines.append(
            f'Exception in thread "main" org.apache.spark.SparkException: '
            f"Application {application} finished with failed status"
        )
    with stderr_path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def step_log_dir(runner_workdir: Path, cluster_id: str, step_id: str) -> Path:
    return runner_workdir / cluster_id / "steps" / step_id


def failure_reason(stdout_path: Path, stderr_path: Path, status: int) -> str:
    """The line that best explains a failed step.

    spark-submit merges a Python driver's stderr into its own stdout, so a Python error can be on
    either stream; Spark's own WARN/INFO log lines are never the explanation.
    """
    streams = [_meaningful_lines(stderr_path), _meaningful_lines(stdout_path)]
    for pattern in _ERROR_LINES:
        for lines in streams:
            for line in reversed(lines):
                if pattern.search(line):
                    return line[:1000]
    for lines in streams:
        if lines:
            return lines[-1][:1000]
    return f"step command exited with status {status}"


def _meaningful_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text(errors="replace").splitlines())
    return [line for line in lines if line and not _LOG_NOISE.match(line)]


def _kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the step's process group (spark-submit, its JVM, Python workers), then SIGKILL."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _validation_problem(cluster: Cluster, iam: Any, ec2: Any) -> str | None:
    """What real EMR would reject at cluster start that moto accepts: missing roles, subnet, SGs."""
    service_role = (cluster.service_role or "").rsplit("/", 1)[-1]
    if not service_role:
        return "ServiceRole is required"
    try:
        iam.get_role(RoleName=service_role)
    except iam.exceptions.NoSuchEntityException:
        return f"The service role {cluster.service_role} does not exist"
    profile = (cluster.role or "").rsplit("/", 1)[-1]
    try:
        iam.get_instance_profile(InstanceProfileName=profile)
    except iam.exceptions.NoSuchEntityException:
        return f"Invalid InstanceProfile: {cluster.role} (JobFlowRole must name an instance profile)"
    if cluster.ec2_subnet_id:
        subnets = ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": [cluster.ec2_subnet_id]}])
        if not subnets["Subnets"]:
            return f"The subnet ID '{cluster.ec2_subnet_id}' does not exist"
    groups = [
        group
        for group in (
            cluster.master_security_group,
            cluster.slave_security_group,
            cluster.service_access_security_group,
        )
        if group
    ]
    if groups:
        found = ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": groups}])
        missing = set(groups) - {group["GroupId"] for group in found["SecurityGroups"]}
        if missing:
            return f"The security group(s) {', '.join(sorted(missing))} do not exist"
    return None
