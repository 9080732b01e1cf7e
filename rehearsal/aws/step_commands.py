"""Translate an EMR step (Jar + Args) into the equivalent local Spark command line.

EMR runs `command-runner.jar` steps as a plain command on the primary node; the two commands the
pipeline uses are `hive -f` (HiveQL) and `spark-submit`. Locally, `spark-sql` (Spark's Hive-compatible
CLI, same `-f/--hivevar/-d/--hiveconf` options) stands in for Hive, and pyspark's `spark-submit` runs
in `local[2]` mode. Every `s3://` URI inside an argument is rewritten by the caller-supplied mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rehearsal.aws.s3_uri import S3_URI_PATTERN, S3Uri

COMMAND_RUNNER_JARS = ("command-runner.jar",)
LOCAL_MASTER = "local[2]"

# spark-submit options that take no value (everything else starting with "--" takes one).
_SPARK_SUBMIT_FLAGS = frozenset({"--verbose", "-v", "--supervise"})
# Cluster placement and sizing: meaningless (or harmful on a shared 2-core machine) in local mode.
_CLUSTER_ONLY_OPTIONS = frozenset(
    {
        "--master",
        "--deploy-mode",
        "--num-executors",
        "--executor-cores",
        "--executor-memory",
        "--total-executor-cores",
        "--driver-cores",
        "--driver-memory",
        "--queue",
    }
)
_CLUSTER_ONLY_CONFS = frozenset(
    {
        "spark.master",
        "spark.submit.deployMode",
        "spark.executor.instances",
        "spark.executor.cores",
        "spark.executor.memory",
        "spark.driver.memory",
        "spark.driver.cores",
    }
)


class UnsupportedStepError(ValueError):
    """The step's command has no local equivalent; the message says which and what is supported."""


@dataclass(frozen=True)
class StepCommand:
    """A normalised EMR step: `tool` is "hive" (HiveQL CLI) or "spark-submit"; `args` follow it."""

    tool: str
    args: tuple[str, ...]

    @property
    def driver_in_cluster(self) -> bool:
        """spark-submit with ``--deploy-mode cluster``: on EMR the driver runs in a YARN container,
        so its output goes to the container's logs, not to the step's stdout/stderr."""
        if self.tool != "spark-submit":
            return False
        options, _ = _split_spark_submit(list(self.args), keep_cluster_options=True)
        pairs = dict(zip(options[::2], options[1::2], strict=False))
        confs = dict(
            value.split("=", 1)
            for name, value in zip(options[::2], options[1::2], strict=False)
            if name in ("--conf", "-c") and "=" in value
        )
        mode = pairs.get("--deploy-mode") or confs.get("spark.submit.deployMode", "client")
        return mode.strip() == "cluster"

    def s3_locations(self) -> list[S3Uri]:
        """Every distinct s3:// location named anywhere in the arguments, in order of appearance."""
        seen: dict[S3Uri, None] = {}
        for arg in self.args:
            for match in S3_URI_PATTERN.finditer(arg):
                seen.setdefault(S3Uri.parse(match.group(0)), None)
        return list(seen)


def parse_step(jar: str, args: Sequence[str]) -> StepCommand:
    """Normalise the step's Jar/Args; raise UnsupportedStepError for anything the runner cannot run."""
    if jar.rsplit("/", 1)[-1] not in COMMAND_RUNNER_JARS:
        raise UnsupportedStepError(
            f"unsupported step jar {jar!r}: the local step runner only runs command-runner.jar steps"
        )
    if not args:
        raise UnsupportedStepError("command-runner.jar step without Args")
    program, *rest = args
    if program in ("hive", "spark-sql"):
        return StepCommand("hive", tuple(rest))
    if program == "hive-script":
        return StepCommand("hive", tuple(_hive_script_args(rest)))
    if program == "spark-submit":
        return StepCommand("spark-submit", tuple(rest))
    raise UnsupportedStepError(
        f"unsupported step command {program!r}: the local step runner runs "
        "'hive' / 'hive-script --run-hive-script' / 'spark-sql' and 'spark-submit'"
    )


def _hive_script_args(args: Sequence[str]) -> list[str]:
    # EMR's legacy form: hive-script --run-hive-script --args -f <script> [-d K=V ...]
    if "--args" not in args:
        raise UnsupportedStepError(
            "hive-script step without '--args': expected hive-script --run-hive-script --args -f <script>"
        )
    return list(args[args.index("--args") + 1 :])


def rewrite_s3_uris(arg: str, to_local: Callable[[S3Uri], str]) -> str:
    return S3_URI_PATTERN.sub(lambda m: to_local(S3Uri.parse(m.group(0))), arg)


def local_argv(
    command: StepCommand,
    *,
    spark_sql: str,
    spark_submit: str,
    cluster_confs: dict[str, str],
    to_local: Callable[[S3Uri], str],
) -> list[str]:
    """The local command line for the step, with s3:// URIs mapped by `to_local`."""
    confs = [part for key, value in cluster_confs.items() for part in ("--conf", f"{key}={value}")]
    args = [rewrite_s3_uris(arg, to_local) for arg in command.args]
    if command.tool == "hive":
        return [spark_sql, "--master", LOCAL_MASTER, *confs, *args]
    options, application = _split_spark_submit(args)
    if not application:
        raise UnsupportedStepError("spark-submit step without an application (script or jar)")
    return [spark_submit, "--master", LOCAL_MASTER, *options, *confs, *application]


def _split_spark_submit(args: list[str], *, keep_cluster_options: bool = False) -> tuple[list[str], list[str]]:
    """Split spark-submit args into kept options and [primary resource, app args...]."""
    kept: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            return kept, args[index:]
        if arg in _SPARK_SUBMIT_FLAGS:
            kept.append(arg)
            index += 1
            continue
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            index += 1
        elif index + 1 < len(args):
            name, value = arg, args[index + 1]
            index += 2
        else:
            raise UnsupportedStepError(f"spark-submit option {arg!r} is missing its value")
        if name in ("--conf", "-c"):
            if keep_cluster_options or value.split("=", 1)[0].strip() not in _CLUSTER_ONLY_CONFS:
                kept += ["--conf", value]
        elif keep_cluster_options or name not in _CLUSTER_ONLY_OPTIONS:
            kept += [name, value]
    return kept, []
