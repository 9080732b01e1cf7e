"""Run many invocations of an EMR step script in ONE spark-submit (one JVM start per Spark line).

Submitted by the pipeline tests with the spark-submit of each Spark line under test, so the job's code
runs on that line's pyspark:

    spark-submit job_batch.py <job script> <cases.json> <results.json>

cases.json: ``[{"id": ..., "runs": [{"argv": [...], "fail_writing_customer": <id or null>}]}]``;
each run calls the script's ``main(argv, spark=<shared session>)`` with stdout/stderr captured.
``fail_writing_customer`` makes the write fail on that customer (an executor error mid-write).
results.json: ``{case id: [{"code", "stdout", "stderr", "exception"}, ...]}``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import traceback
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def failing_while_writing(sort, customer_id: int):
    def sort_then_fail(frame):
        sorted_frame = sort(frame)
        failure = F.raise_error(F.lit("disk on fire"))
        return sorted_frame.withColumn(
            "age", F.when(F.col("customer_id") == customer_id, failure).otherwise(F.col("age"))
        )

    return sort_then_fail


def main(job_path: str, cases_path: str, results_path: str) -> None:
    job = load(job_path)
    spark = SparkSession.builder.appName("job-batch").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    real_sort = job.sort_customers
    results = {}
    for case in json.loads(Path(cases_path).read_text()):
        outcomes = []
        for run in case["runs"]:
            failing = run.get("fail_writing_customer")
            job.sort_customers = failing_while_writing(real_sort, failing) if failing else real_sort
            out, err = io.StringIO(), io.StringIO()
            code, exception = None, None
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = job.main(run["argv"], spark=spark)
                except Exception:  # the test decides whether an exception was expected
                    exception = traceback.format_exc(limit=3)
            outcomes.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "exception": exception})
        results[case["id"]] = outcomes
    spark.stop()
    Path(results_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
