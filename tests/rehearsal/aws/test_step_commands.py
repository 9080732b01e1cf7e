"""EMR step -> local command translation (no Spark, no server)."""

from __future__ import annotations

import pytest

from rehearsal.aws.s3_uri import S3Uri
from rehearsal.aws.step_commands import UnsupportedStepError, local_argv, parse_step

CONFS = {"spark.sql.catalogImplementation": "hive", "spark.sql.warehouse.dir": "/wh"}


def to_local(location: S3Uri) -> str:
    return f"/mirror/{location.bucket}/{location.key}"


def argv(jar: str, args: list[str]) -> list[str]:
    return local_argv(
        parse_step(jar, args),
        spark_sql="spark-sql",
        spark_submit="spark-submit",
        cluster_confs=CONFS,
        to_local=to_local,
    )


CLUSTER_CONF_ARGS = [
    "--conf",
    "spark.sql.catalogImplementation=hive",
    "--conf",
    "spark.sql.warehouse.dir=/wh",
]


def test_hive_step_runs_spark_sql_with_every_s3_uri_mapped():
    assert argv(
        "command-runner.jar",
        ["hive", "-f", "s3://code/steps/load.hql", "--hivevar", "input_location=s3://data/in/", "-d", "db=mall"],
    ) == [
        "spark-sql",
        "--master",
        "local[2]",
        *CLUSTER_CONF_ARGS,
        "-f",
        "/mirror/code/steps/load.hql",
        "--hivevar",
        "input_location=/mirror/data/in/",
        "-d",
        "db=mall",
    ]


def test_legacy_hive_script_form_and_spark_sql_are_hive_steps():
    legacy = parse_step("command-runner.jar", ["hive-script", "--run-hive-script", "--args", "-f", "s3://c/a.hql"])
    assert (legacy.tool, legacy.args) == ("hive", ("-f", "s3://c/a.hql"))
    assert parse_step("command-runner.jar", ["spark-sql", "-e", "SELECT 1"]).tool == "hive"


def test_spark_submit_drops_cluster_placement_and_keeps_the_rest():
    result = argv(
        "command-runner.jar",
        [
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--master",
            "yarn",
            "--executor-memory",
            "4g",
            "--num-executors=3",
            "--conf",
            "spark.submit.deployMode=cluster",
            "--conf",
            "spark.sql.shuffle.partitions=4",
            "--conf",
            "spark.yarn.dist.files=s3://code/extra.txt",
            "--py-files",
            "s3://code/a.zip,s3://code/b.py",
            "--name=sorter",
            "--verbose",
            "s3://code/steps/job.py",
            "--output",
            "s3://data/out/",
            "--deploy-mode",
            "kept-because-it-is-an-app-argument",
        ],
    )
    assert result == [
        "spark-submit",
        "--master",
        "local[2]",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--conf",
        "spark.yarn.dist.files=/mirror/code/extra.txt",
        "--py-files",
        "/mirror/code/a.zip,/mirror/code/b.py",
        "--name",
        "sorter",
        "--verbose",
        *CLUSTER_CONF_ARGS,
        "/mirror/code/steps/job.py",
        "--output",
        "/mirror/data/out/",
        "--deploy-mode",
        "kept-because-it-is-an-app-argument",
    ]


def test_referenced_locations_are_found_inside_arguments_once_each():
    step = parse_step(
        "command-runner.jar",
        ["spark-submit", "--py-files", "s3://c/a.zip,s3://c/b.py", "s3://c/job.py", "in=s3://d/in/", "s3://d/in/"],
    )
    assert step.s3_locations() == [
        S3Uri("c", "a.zip"),
        S3Uri("c", "b.py"),
        S3Uri("c", "job.py"),
        S3Uri("d", "in/"),
    ]


@pytest.mark.parametrize(
    ("jar", "args", "message"),
    [
        ("s3://bucket/custom.jar", ["x"], "only runs command-runner.jar"),
        ("command-runner.jar", [], "without Args"),
        ("command-runner.jar", ["bash", "-c", "true"], "unsupported step command 'bash'"),
        ("command-runner.jar", ["hive-script", "--run-hive-script", "-f", "x"], "without '--args'"),
        ("command-runner.jar", ["spark-submit", "--deploy-mode", "cluster"], "without an application"),
        ("command-runner.jar", ["spark-submit", "--conf"], "missing its value"),
    ],
)
def test_unsupported_steps_say_what_is_wrong(jar, args, message):
    with pytest.raises(UnsupportedStepError, match=message):
        argv(jar, args)


@pytest.mark.parametrize(
    ("uri", "key", "covered", "not_covered"),
    [
        # Hadoop paths drop the trailing slash, so s3://b/out/ also names an object "out" (as EMRFS does).
        ("s3://b/out/", "out/", ["out", "out/part-0.parquet", "out/x/y"], ["outer/x", "other"]),
        ("s3://b/in/file.csv", "in/file.csv", ["in/file.csv", "in/file.csv/part"], ["in/file.csv2"]),
        ("s3://b", "", ["anything", "a/b"], []),
    ],
)
def test_location_covers_the_object_and_everything_under_it(uri, key, covered, not_covered):
    location = S3Uri.parse(uri)
    assert location.key == key
    assert all(location.covers(k) for k in covered)
    assert not any(location.covers(k) for k in not_covered)


def test_not_an_s3_uri_is_rejected():
    with pytest.raises(ValueError, match="not an s3:// URI"):
        S3Uri.parse("/local/path")
