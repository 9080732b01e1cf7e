"""Missing or unsuitable Java gives one line saying what is missing and how to get it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rehearsal.aws import RehearsalEnvironmentError, find_spark_environment, spark_env


def test_finds_pyspark_spark_sql_and_spark_submit():
    spark = find_spark_environment()
    assert spark.spark_sql.is_file() and spark.spark_submit.is_file()
    env = spark.process_env({"SPARK_CONF_DIR": "/elsewhere"})
    assert env["SPARK_HOME"] == str(spark.spark_home)
    assert "SPARK_CONF_DIR" not in env


def test_missing_java_names_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RehearsalEnvironmentError) as error:
        find_spark_environment()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("rehearsal: java not found")
    assert "apt-get install openjdk-17-jre-headless" in message


def test_old_java_is_refused(monkeypatch, tmp_path):
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(RehearsalEnvironmentError, match=r"java 11 .* too old for Spark 4: install Java 17"):
        find_spark_environment()


def test_an_emr_release_gets_its_own_spark_line():
    spark = find_spark_environment("emr-7.10.0")
    assert spark.python == str(spark_env.INTERPRETERS["3.5"])
    assert spark.spark_submit.is_file()
    assert any((spark.spark_home / "jars").glob("spark-core_2.12-3.5.*.jar")), "Spark 3.5 on Scala 2.12, as EMR 7"


def test_a_release_without_a_known_spark_line_is_refused():
    with pytest.raises(
        RehearsalEnvironmentError, match=r"no local Spark line known for EMR release 'emr-6.15.0'.*emr-7\.\*"
    ):
        find_spark_environment("emr-6.15.0")


def test_a_missing_release_interpreter_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(spark_env.INTERPRETERS, "3.5", tmp_path / "nowhere" / "bin" / "python")
    with pytest.raises(
        RehearsalEnvironmentError,
        match=r"emr-7.10.0 runs Spark 3.5, but its interpreter .* is not installed: run `make venv`",
    ):
        find_spark_environment("emr-7.10.0")


def test_an_interpreter_on_another_line_is_refused(monkeypatch):
    monkeypatch.setitem(spark_env.INTERPRETERS, "3.5", Path(sys.executable))  # the project's pyspark 4
    with pytest.raises(
        RehearsalEnvironmentError, match=r"has pyspark 4\.\S+, but EMR release emr-7.10.0 runs Spark 3.5"
    ):
        find_spark_environment("emr-7.10.0")
