"""Missing or unsuitable Java gives one line saying what is missing and how to get it."""

from __future__ import annotations

import pytest

from rehearsal.aws import RehearsalEnvironmentError, find_spark_environment


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
    java.write_text('#!/bin/sh\necho \'openjdk version "11.0.22" 2024-01-16\' >&2\n')
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(RehearsalEnvironmentError, match=r"java 11 .* too old for Spark 4: install Java 17"):
        find_spark_environment()
