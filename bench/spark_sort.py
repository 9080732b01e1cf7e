"""Benchmark: our validated, atomic sort job vs. a bare Spark sort vs. DuckDB, on synthetic customers.

In one run, for each size N (default 1M and 10M rows) it times
  (a) emr_steps/sort_by_spending_score.py (validation + sort + atomic Parquet write, in-process),
  (b) a minimal hand-written Spark read -> sort -> write Parquet,
  (c) DuckDB doing the same sort and Parquet write,
and prints a/b, a/c and how each grows from the smallest to the largest N.
Targets: a/b <= 1.2, a/c <= 3, 10x rows <= 12x time. Not a test: numbers depend on the machine.

    .venv/bin/python bench/spark_sort.py [--rows 1000000 10000000] [--workdir .bench] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import duckdb
from pyspark.sql import SparkSession
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

REPO = Path(__file__).resolve().parents[1]
HEADER = ("CustomerID", "Genre", "Age", "Annual Income (k$)", "Spending Score (1-100)")
TYPED = StructType(
    [
        StructField("customer_id", IntegerType()),
        StructField("gender", StringType()),
        StructField("age", IntegerType()),
        StructField("annual_income_k_usd", IntegerType()),
        StructField("spending_score", IntegerType()),
    ]
)


def load_job():
    path = REPO / "emr_steps" / "sort_by_spending_score.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def generate(path: Path, rows: int) -> None:
    """Same shape as Mall_Customers.csv: zero-padded unique ids, many score ties."""
    duckdb.sql(
        f"""
        COPY (
            SELECT lpad(CAST(i + 1 AS VARCHAR), 8, '0') AS c0,
                   CASE WHEN hash(i, 1) % 2 = 0 THEN 'Male' ELSE 'Female' END AS c1,
                   18 + hash(i, 2) % 53 AS c2,
                   15 + hash(i, 3) % 123 AS c3,
                   1 + hash(i, 4) % 100 AS c4
            FROM range({rows}) t(i)
        ) TO '{path}' (HEADER false)
        """
    )
    body = path.read_bytes()
    path.write_bytes((",".join(HEADER) + "\n").encode() + body)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def our_job(job, spark: SparkSession, source: Path, output: Path) -> None:
    if job.main(["--source-csv", str(source), "--output", str(output)], spark=spark) != 0:
        raise SystemExit("our job rejected the synthetic input")


def bare_spark(spark: SparkSession, source: Path, output: Path) -> None:
    frame = spark.read.csv(str(source), header=True, schema=TYPED)
    frame.orderBy("spending_score", "customer_id").write.mode("overwrite").parquet(str(output))


def duck(source: Path, output: Path, threads: int) -> None:
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(
        f"""
        COPY (
            SELECT CAST("CustomerID" AS INTEGER) AS customer_id, "Genre" AS gender, CAST("Age" AS INTEGER) AS age,
                   CAST("Annual Income (k$)" AS INTEGER) AS annual_income_k_usd,
                   CAST("Spending Score (1-100)" AS INTEGER) AS spending_score
            FROM read_csv('{source}', header = true, all_varchar = true)
            ORDER BY spending_score, customer_id
        ) TO '{output}' (FORMAT parquet)
        """
    )
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench")
    parser.add_argument("--threads", type=int, default=2, help="Spark local[N] and DuckDB threads")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the fastest counts")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    job = load_job()
    spark = (
        SparkSession.builder.master(f"local[{args.threads}]")
        .appName("bench-spark-sort")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        # The JIT needs volume before timings mean anything.
        warmup = args.workdir / "warmup.csv"
        generate(warmup, 500_000)
        for _ in range(2):
            our_job(job, spark, warmup, args.workdir / "warmup_a")
            bare_spark(spark, warmup, args.workdir / "warmup_b")

        results = []
        for rows in args.rows:
            source = args.workdir / f"customers_{rows}.csv"
            if not source.exists():
                generate(source, rows)
            runs = {"a": [], "b": [], "c": []}
            for _ in range(args.repeat):  # interleaved, so load from other processes hits all alike
                runs["b"].append(timed(partial(bare_spark, spark, source, args.workdir / f"b_{rows}")))
                runs["a"].append(timed(partial(our_job, job, spark, source, args.workdir / f"a_{rows}")))
                runs["c"].append(timed(partial(duck, source, args.workdir / f"c_{rows}.parquet", args.threads)))
            a, b, c = (min(runs[k]) for k in "abc")
            results.append((rows, a, b, c))
            print(
                f"{rows:>11,} rows: " + "  ".join(f"{k}={' '.join(f'{t:.1f}' for t in v)}s" for k, v in runs.items()),
                flush=True,
            )
    finally:
        spark.stop()

    print()
    print("| rows | (a) our job s | (b) bare Spark s | (c) DuckDB s | a/b | a/c |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for rows, a, b, c in results:
        print(f"| {rows:,} | {a:.1f} | {b:.1f} | {c:.1f} | {a / b:.2f} | {a / c:.2f} |")
    if len(results) > 1:
        (n0, a0, b0, c0), (n1, a1, b1, c1) = results[0], results[-1]
        print()
        print(
            f"growth {n0:,} -> {n1:,} rows ({n1 / n0:.0f}x): a {a1 / a0:.1f}x, b {b1 / b0:.1f}x, c {c1 / c0:.1f}x time"
        )
    for leftover in ("warmup_a", "warmup_b"):
        shutil.rmtree(args.workdir / leftover, ignore_errors=True)


if __name__ == "__main__":
    main()
