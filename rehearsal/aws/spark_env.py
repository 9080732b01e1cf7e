"""Locate the local Java and the Spark (a pyspark's bundled distribution) that runs an EMR release's steps.

EMR step code must run on the Spark line of the cluster's release, not on whatever pyspark the
project's own tools use: ``SPARK_LINES`` maps a release label to its line and ``INTERPRETERS`` names
the interpreter (built by ``make venv`` from requirements-emr.txt) whose pyspark is that line.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stacks.config import REPO_ROOT

MIN_JAVA_MAJOR = 17

# Release label prefix -> the Spark line (major.minor) EMR ships in it. emr-7.0.0 .. emr-7.12.0 all
# ship Spark 3.5.x (AWS "Spark release history"); emr-spark-8.x has Spark 4 but no Hive, which the
# pipeline's load step needs, so it is not offered.
SPARK_LINES = {"emr-7.": "3.5"}
# Spark line -> the interpreter whose pyspark is that line (Makefile target .venv-emr/.installed).
INTERPRETERS = {"3.5": REPO_ROOT / ".venv-emr" / "bin" / "python"}


class RehearsalEnvironmentError(RuntimeError):
    """A tool the emulator needs is missing; the message is one line saying how to get it."""


@dataclass(frozen=True)
class SparkEnvironment:
    spark_home: Path
    java_home: Path | None
    python: str

    @property
    def spark_sql(self) -> Path:
        return self.spark_home / "bin" / "spark-sql"

    @property
    def spark_submit(self) -> Path:
        return self.spark_home / "bin" / "spark-submit"

    def process_env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env["SPARK_HOME"] = str(self.spark_home)
        env["PYSPARK_PYTHON"] = self.python
        env["PYSPARK_DRIVER_PYTHON"] = self.python
        env["SPARK_LOCAL_IP"] = "127.0.0.1"  # loopback only; also silences the hostname warning
        if self.java_home is not None:
            env["JAVA_HOME"] = str(self.java_home)
        # The step must not talk to real AWS or inherit the caller's Spark setup.
        for leaked in ("SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR", "PYTHONSTARTUP"):
            env.pop(leaked, None)
        return env


def _java_binary() -> tuple[Path, Path | None]:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return Path(java_home) / "bin" / "java", Path(java_home)
    found = shutil.which("java")
    if not found:
        raise RehearsalEnvironmentError(
            f"rehearsal: java not found: install Java {MIN_JAVA_MAJOR} "
            f"(apt-get install openjdk-{MIN_JAVA_MAJOR}-jre-headless) or set JAVA_HOME"
        )
    return Path(found), None


def _java_major(java: Path) -> int:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        raise RehearsalEnvironmentError(f"rehearsal: java at {java} does not run: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise RehearsalEnvironmentError(f"rehearsal: cannot read the version of java at {java}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _pyspark_home() -> Path:
    try:
        import pyspark
    except ImportError as exc:
        raise RehearsalEnvironmentError(
            "rehearsal: pyspark not installed: pip install -r requirements-dev.txt"
        ) from exc
    return _checked_home(Path(pyspark.__file__).resolve().parent)


def _checked_home(home: Path) -> Path:
    if not (home / "bin" / "spark-submit").is_file() or not (home / "jars").is_dir():
        raise RehearsalEnvironmentError(
            f"rehearsal: pyspark at {home} has no bundled Spark (bin/, jars/): reinstall pyspark from PyPI"
        )
    if not any((home / "jars").glob("spark-hive-thriftserver_*.jar")):
        raise RehearsalEnvironmentError(
            f"rehearsal: pyspark at {home} lacks Hive support (spark-hive-thriftserver jar) needed by spark-sql"
        )
    return home


def spark_line(release_label: str) -> str:
    """The Spark line ("3.5") of an EMR release label, or RehearsalEnvironmentError."""
    for prefix, line in SPARK_LINES.items():
        if release_label.startswith(prefix):
            return line
    raise RehearsalEnvironmentError(
        f"rehearsal: no local Spark line known for EMR release {release_label!r}: "
        f"supported are {', '.join(p + '*' for p in SPARK_LINES)}"
    )


@functools.cache
def _interpreter_pyspark(python: Path) -> tuple[Path, str]:
    """(pyspark directory, pyspark version) of another interpreter."""
    probe = "import json, pyspark; print(json.dumps([pyspark.__file__, pyspark.__version__]))"
    try:
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RehearsalEnvironmentError(f"rehearsal: {python} cannot import pyspark: run `make venv`") from exc
    location, version = json.loads(out.stdout.strip().splitlines()[-1])
    return Path(location).resolve().parent, version


def _release_spark(release_label: str) -> tuple[Path, str]:
    line = spark_line(release_label)
    python = INTERPRETERS[line]
    if not python.is_file():
        raise RehearsalEnvironmentError(
            f"rehearsal: EMR release {release_label} runs Spark {line}, but its interpreter {python} "
            "is not installed: run `make venv` (installs requirements-emr.txt into .venv-emr)"
        )
    home, version = _interpreter_pyspark(python)
    if not version.startswith(line + "."):
        raise RehearsalEnvironmentError(
            f"rehearsal: {python} has pyspark {version}, but EMR release {release_label} runs Spark {line}: "
            "run `make venv` (requirements-emr.txt)"
        )
    return home, str(python)


def find_spark_environment(release_label: str | None = None) -> SparkEnvironment:
    """The local Spark setup for an EMR release's steps (None: the project's own pyspark).

    Raises RehearsalEnvironmentError naming what is missing.
    """
    java, java_home = _java_binary()
    major = _java_major(java)
    if major < MIN_JAVA_MAJOR:
        raise RehearsalEnvironmentError(
            f"rehearsal: java {major} at {java} is too old for Spark 4: install Java {MIN_JAVA_MAJOR} "
            f"(apt-get install openjdk-{MIN_JAVA_MAJOR}-jre-headless) or point JAVA_HOME at it"
        )
    if release_label is None:
        return SparkEnvironment(spark_home=_pyspark_home(), java_home=java_home, python=sys.executable)
    home, python = _release_spark(release_label)
    return SparkEnvironment(spark_home=_checked_home(home), java_home=java_home, python=python)
