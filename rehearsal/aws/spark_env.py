"""Locate the local Java and Spark (pyspark's bundled distribution) the step runner needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MIN_JAVA_MAJOR = 17


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
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
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
    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-submit").is_file() or not (home / "jars").is_dir():
        raise RehearsalEnvironmentError(
            f"rehearsal: pyspark at {home} has no bundled Spark (bin/, jars/): reinstall pyspark from PyPI"
        )
    if not any((home / "jars").glob("spark-hive-thriftserver_*.jar")):
        raise RehearsalEnvironmentError(
            f"rehearsal: pyspark at {home} lacks Hive support (spark-hive-thriftserver jar) needed by spark-sql"
        )
    return home


def find_spark_environment() -> SparkEnvironment:
    """Return the local Spark setup or raise RehearsalEnvironmentError naming what is missing."""
    java, java_home = _java_binary()
    major = _java_major(java)
    if major < MIN_JAVA_MAJOR:
        raise RehearsalEnvironmentError(
            f"rehearsal: java {major} at {java} is too old for Spark 4: install Java {MIN_JAVA_MAJOR} "
            f"(apt-get install openjdk-{MIN_JAVA_MAJOR}-jre-headless) or point JAVA_HOME at it"
        )
    return SparkEnvironment(spark_home=_pyspark_home(), java_home=java_home, python=sys.executable)
