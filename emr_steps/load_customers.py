"""Load the mall customers CSV into the Hive table ``<database>.customers``.

spark-submit step of DAG_2, with Hive support (the cluster's Hive metastore):

    spark-submit --py-files <steps>/sort_by_spending_score.py <steps>/load_customers.py \
        --input s3://bucket/path/Mall_Customers.csv --database mall

Reads exactly the object ``--input`` names -- never its folder, so other files beside it (other CSVs,
``_SUCCESS``, ``_$folder$`` markers) are ignored -- with the sort job's RFC 4180 reader and checks,
and never moves or modifies it (no ``LOAD DATA INPATH``, which moves its source). The table is a
Hive Parquet table ``customer_id INT, gender STRING, age INT, annual_income_k_usd INT,
spending_score INT``, replaced by ``INSERT OVERWRITE`` on every run.

Exit codes: 0 success, 2 bad input (one ``error: ...`` line on stderr, the table untouched).
"""

from __future__ import annotations

import argparse
import re
import sys

from pyspark.sql import SparkSession
from sort_by_spending_score import FIELDS, OUTPUT_SCHEMA, InputError, read_csv, report_failure, validate

TABLE = "customers"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load(spark: SparkSession, *, source: str, database: str) -> int:
    """Validate the object and replace the table's rows with it; return the row count."""
    if not _IDENTIFIER.fullmatch(database):
        raise InputError(f"database {database!r} is not a Hive identifier")
    if source.endswith("/"):
        raise InputError(f"input {source} names a prefix; it must name the CSV object")
    raw, typed = read_csv(spark, source)
    typed = typed.persist()
    try:
        rows = validate(raw, typed, "csv")
        columns = ", ".join(f"{f.name} {OUTPUT_SCHEMA[f.name].dataType.simpleString().upper()}" for f in FIELDS)
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {database}.{TABLE} ({columns}) STORED AS PARQUET")
        typed.createOrReplaceTempView("customers_from_csv")
        spark.sql(
            f"INSERT OVERWRITE TABLE {database}.{TABLE} "
            f"SELECT {', '.join(f.name for f in FIELDS)} FROM customers_from_csv"
        )
        return rows
    finally:
        typed.unpersist()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="the CSV object, local path or s3:// URI")
    parser.add_argument("--database", required=True, help=f"Hive database of the table {TABLE}")
    parser.add_argument("--failure-summary", help="where to write the error line on bad input (see sort job)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    args = parse_args(argv)
    own_session = spark is None
    if own_session:
        spark = SparkSession.builder.appName("load_customers").enableHiveSupport().getOrCreate()
    try:
        rows = load(spark, source=args.input, database=args.database)
    except InputError as problem:
        report_failure(spark, problem, args.failure_summary)
        return 2
    finally:
        if own_session:
            spark.stop()
    print(f"loaded {rows} customers from {args.input} into {args.database}.{TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
