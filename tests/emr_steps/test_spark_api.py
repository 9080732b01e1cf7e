"""The EMR steps use no PySpark API that the configured release's Spark line lacks (seconds, no JVM).

EMR 7.x runs Spark 3.5; the project's own pyspark is 4. An attribute the steps use that only pyspark 4
defines (e.g. Column.try_cast) fails on the cluster with AttributeError. The job tests find that
too, after minutes of Spark on both lines; this compares the two APIs by name in a few seconds.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from rehearsal.aws.spark_env import find_spark_environment

from ..pipeline_support import EMR_STEPS, PIPELINE_CONFIG

# The PySpark surfaces the steps call: functions, Column, DataFrame and its reader/writer, the session,
# the RDD API (a name on any of them counts as present: the check has no types).
API_PROBE = (
    "import json, pyspark, pyspark.sql.functions as F\n"
    "from pyspark import RDD\n"
    "from pyspark.sql import Column, DataFrame, DataFrameReader, DataFrameWriter, SparkSession\n"
    "names = set(dir(F)) | set(dir(Column)) | set(dir(DataFrame)) | set(dir(DataFrameReader))\n"
    "names |= set(dir(DataFrameWriter)) | set(dir(SparkSession)) | set(dir(SparkSession.Builder)) | set(dir(RDD))\n"
    "print(json.dumps({'version': pyspark.__version__, 'names': sorted(names)}))\n"
)


def pyspark_api(python: str) -> tuple[str, set[str]]:
    result = subprocess.run([python, "-c", API_PROBE], capture_output=True, text=True, check=True, timeout=120)
    api = json.loads(result.stdout)
    return api["version"], set(api["names"])


def attributes_used(source: str) -> set[str]:
    return {node.attr for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute)}


def test_the_steps_use_no_pyspark_api_the_releases_spark_line_lacks():
    release = PIPELINE_CONFIG["release_label"]
    newer_version, newer = pyspark_api(sys.executable)
    release_version, on_release = pyspark_api(find_spark_environment(release).python)
    assert newer_version.split(".")[0] != release_version.split(".")[0], "the two lines are the same: nothing compared"
    only_newer = newer - on_release
    assert "try_cast" in only_newer  # the comparison sees the API difference it exists for
    for step in sorted(EMR_STEPS.glob("*.py")):
        missing = sorted(attributes_used(step.read_text()) & only_newer)
        assert not missing, (
            f"{step.name} uses {missing}, which pyspark {newer_version} has and pyspark "
            f"{release_version} of {release} (what EMR runs) lacks: AttributeError on the cluster"
        )
