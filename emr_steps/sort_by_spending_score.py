"""Sort the mall customers by spending score and write them as Parquet.

spark-submit step of DAG_2. Reads either the typed Hive table that load_customers.hql builds
(``--source-table DB.TABLE``) or the CSV itself (``--source-csv PATH_OR_URI``), validates every row
before anything is written, sorts ascending by spending score (ties: customer id ascending) and
publishes it inside ``--output`` (a new ``runs/<run id>/`` named by the ``_LATEST`` pointer, see publish). Paths go through Hadoop's FileSystem API, so local paths and
``s3://`` URIs (EMRFS on EMR) behave the same; no AWS SDK is used.

Exit codes: 0 success, 2 bad input (one ``error: ...`` line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, IntegerType, LongType, StringType, StructField, StructType

BOM = "\ufeff"


@dataclass(frozen=True)
class Field:
    name: str  # snake_case output column
    headers: tuple[str, ...]  # accepted CSV header spellings; the first is shown in errors
    numeric: bool
    low: int | None = None
    high: int | None = None

    @property
    def label(self) -> str:
        return self.headers[0]


FIELDS = (
    Field("customer_id", ("CustomerID",), numeric=True, low=0),
    Field("gender", ("Gender", "Genre"), numeric=False),
    Field("age", ("Age",), numeric=True, low=0, high=150),
    Field("annual_income_k_usd", ("Annual Income (k$)",), numeric=True, low=0),
    Field("spending_score", ("Spending Score (1-100)",), numeric=True, low=1, high=100),
)
OUTPUT_SCHEMA = StructType(
    [StructField(f.name, IntegerType() if f.numeric else StringType(), nullable=False) for f in FIELDS]
)
SORT_KEYS = ("spending_score", "customer_id")
ROW_NUMBER = "_row_number"


class InputError(Exception):
    """Bad input: the message is shown to the user as a single line."""


def _normalise_header(name: str) -> str:
    return name.replace(BOM, "").strip().lower()


def _hadoop_path(spark: SparkSession, location: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def _require_non_empty_input(spark: SparkSession, location: str) -> None:
    path, fs = _hadoop_path(spark, location)
    if not fs.exists(path):
        raise InputError(f"input not found: {location}")
    if fs.getContentSummary(path).getLength() == 0:
        raise InputError(f"input is empty: {location}")


# RFC 4180 records, one per line: a field is quoted ("..." with "" for a quote inside, commas allowed)
# or unquoted (no quote, no comma). Java regex, evaluated by Spark over every line in the JVM.
_QUOTED_FIELD = r'"(?:[^"]|"")*"'
_PLAIN_FIELD = r'[^,"]*'
_FIELD = f"(?:{_QUOTED_FIELD}|{_PLAIN_FIELD})"


def _record_pattern(fields: int) -> str:
    return f"^{BOM}?{_FIELD}(?:,{_FIELD}){{{fields - 1}}}$"


def _parse_line(text: str) -> list[str]:
    """One CSV line as RFC 4180 fields; csv.Error for an unbalanced quote."""
    return next(csv.reader([text.replace(BOM, "", 1)], strict=True), [])


def _malformed_line(spark: SparkSession, location: str, fields: int) -> str | None:
    """Describe the first line that is not one RFC 4180 record of ``fields`` fields, or None.

    The good path is one regex pass in the JVM; only on failure are lines numbered (zipWithIndex over
    the failing file, in file order) and the bad one parsed again to say what is wrong.
    """
    lines = spark.read.text(location)
    bad = F.trim(F.col("value")) != ""
    bad = bad & ~F.col("value").rlike(_record_pattern(fields))
    first = lines.where(bad).select(F.input_file_name().alias("file")).limit(1).collect()
    if not first:
        return None
    file = first[0]["file"]
    numbered = spark.read.text(file).rdd.zipWithIndex()
    pattern = re.compile(_record_pattern(fields))
    number, text = (
        numbered.filter(lambda pair: pair[0][0].strip() != "" and not pattern.match(pair[0][0]))
        .map(lambda pair: (pair[1] + 1, pair[0][0]))
        .min()
    )
    place = f"line {number}" if _is_file(spark, location) else f"{file} line {number}"
    try:
        found = len(_parse_line(text))
    except csv.Error:
        return f"{place}: unbalanced quote (a quoted field must end with a quote before the line ends)"
    if found != fields:
        return f"{place}: {found} fields, but the header has {fields}"
    return f"{place}: a quote inside an unquoted field (quote the whole field and double the quote)"


def _is_file(spark: SparkSession, location: str) -> bool:
    path, fs = _hadoop_path(spark, location)
    return fs.getFileStatus(path).isFile()


def read_csv(spark: SparkSession, location: str) -> tuple[DataFrame, DataFrame]:
    """(raw, typed) frames of the output columns, found by header name (Genre/Gender, any order).

    RFC 4180: quoted fields (header included) with commas and doubled quotes inside, CRLF, a UTF-8
    BOM; every line must be one record with the header's number of fields (a line break inside a
    quoted field is not accepted). ``typed`` parses numbers while reading, like any plain Spark CSV
    read; a value that does not parse becomes NULL there, and ``raw`` (all strings) is read again
    only to describe the problem.
    """
    _require_non_empty_input(spark, location)
    header_row = spark.read.text(location).first()
    header_text = header_row[0] if header_row else ""
    try:
        names = _parse_line(header_text)
    except csv.Error:
        raise InputError("line 1: unbalanced quote in the header") from None
    header = [_normalise_header(h) for h in names]
    positions = {}
    for field in FIELDS:
        found = [i for i, name in enumerate(header) if name in {h.lower() for h in field.headers}]
        if not found:
            raise InputError(f"missing column '{field.label}' in header {header_text.replace(BOM, '').strip()!r}")
        positions[field.name] = found[0]
    problem = _malformed_line(spark, location, len(header))
    if problem:
        raise InputError(problem)
    reader = spark.read.options(
        header=True,
        quote='"',
        escape='"',  # RFC 4180: a quote inside a quoted field is written twice
        ignoreLeadingWhiteSpace=True,
        ignoreTrailingWhiteSpace=True,  # also strips the \r of CRLF files
        mode="PERMISSIVE",
    )

    def read(types: dict[int, DataType]) -> DataFrame:
        schema = StructType([StructField(f"_c{i}", types.get(i, StringType())) for i in range(len(header))])
        return (
            reader.schema(schema).csv(location).select(*[F.col(f"_c{positions[f.name]}").alias(f.name) for f in FIELDS])
        )

    raw = read({})
    typed = read({positions[f.name]: IntegerType() for f in FIELDS if f.numeric})
    return raw, typed


def _read_table(spark: SparkSession, table: str) -> tuple[DataFrame, DataFrame]:
    if not spark.catalog.tableExists(table):
        raise InputError(f"input not found: Hive table {table}")
    frame = spark.table(table)
    missing = [f.name for f in FIELDS if f.name not in frame.columns]
    if missing:
        raise InputError(f"missing column '{missing[0]}' in Hive table {table}")
    raw = frame.select(*[F.col(f.name).cast("string").alias(f.name) for f in FIELDS])
    typed = frame.select(*[F.col(f.name).cast(OUTPUT_SCHEMA[f.name].dataType).alias(f.name) for f in FIELDS])
    return raw, typed


WHOLE_NUMBER = r"^[+-]?[0-9]{1,9}$"  # what both the typed CSV read and the Hive DDL accept as INT


def _problems(field: Field) -> list[tuple[Column, str]]:
    """(condition on a raw row, message template) pairs; {value} is the raw value."""
    raw = F.col(field.name)
    # Only a whole number can be out of range; parsed only then, so no cast ever fails (ANSI mode).
    # Not Column.try_cast: that is PySpark 4 only, and EMR 7.x runs Spark 3.5.
    typed = F.when(raw.rlike(WHOLE_NUMBER), raw.cast("int"))
    checks = [((raw.isNull()) | (raw == ""), f"{field.label} is missing")]
    if field.numeric:
        checks.append((~raw.rlike(WHOLE_NUMBER), f"{field.label} is '{{value}}', not a whole number"))
        bounds = f"{field.low}-{field.high}" if field.high is not None else f">= {field.low}"
        out_of_range = typed < field.low
        if field.high is not None:
            out_of_range = out_of_range | (typed > field.high)
        checks.append((out_of_range, f"{field.label} is {{value}}, outside {bounds}"))
    return checks


def _describe_row(raw: DataFrame, condition: Column, message: str, field: Field, source: str) -> str:
    """Locate the first row matching ``condition`` (error path only, so an extra pass is fine)."""
    schema = StructType([*raw.schema.fields, StructField(ROW_NUMBER, LongType())])
    numbered = raw.sparkSession.createDataFrame(
        raw.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1] + 1)), schema
    )
    row = numbered.where(condition).orderBy(ROW_NUMBER).first()
    where = f"row {row[ROW_NUMBER]}" if source == "csv" else "row"
    customer = row["customer_id"]
    identity = f" (CustomerID {customer})" if customer else ""
    return f"{where}{identity}: " + message.format(value=row[field.name])


def _first_problem(raw: DataFrame, source: str) -> str:
    """Error path: name the first failing check and the first row failing it."""
    for field in FIELDS:
        for condition, message in _problems(field):
            if raw.where(condition).limit(1).count():
                return _describe_row(raw, condition, message, field, source)
    raise AssertionError("validation found a problem the row checks cannot locate")


def validate(raw: DataFrame, typed: DataFrame, source: str) -> int:
    """Return the row count, or raise InputError naming the first problem.

    The good path is one aggregation over ``typed`` (cached by the caller): per-column problem counts
    and an exact distinct-id count from per-bucket bitmaps, which shuffles a few hundred bitmaps
    instead of every id. The raw text is only looked at again to describe a problem.
    """
    checks = []
    for field in FIELDS:
        value = F.col(field.name)
        bad = value.isNull() if field.numeric else value.isNull() | (value == "")
        if field.low is not None:
            bad = bad | (value < field.low)
        if field.high is not None:
            bad = bad | (value > field.high)
        checks.append(F.count(F.when(bad, 1)).alias(field.name))
    ids = F.col("customer_id")
    per_bucket = typed.groupBy(F.bitmap_bucket_number(ids).alias("bucket")).agg(
        F.count(F.lit(1)).alias("rows"),
        F.bitmap_count(F.bitmap_construct_agg(F.bitmap_bit_position(ids))).alias("distinct_ids"),
        *checks,
    )
    rows, distinct_ids, *problems = per_bucket.agg(
        *[F.coalesce(F.sum(c), F.lit(0)) for c in ["rows", "distinct_ids", *(f.name for f in FIELDS)]]
    ).first()
    if rows == 0:
        raise InputError("input has a header but no data rows")
    if any(problems):
        raise InputError(_first_problem(raw, source))
    if distinct_ids != rows:
        dup = (
            raw.groupBy(F.when(F.col("customer_id").rlike(WHOLE_NUMBER), F.col("customer_id").cast("int")).alias("id"))
            .agg(F.count(F.lit(1)).alias("n"), F.min("customer_id").alias("shown"))
            .where("n > 1")
            .orderBy("id")
            .first()
        )
        raise InputError(f"duplicate customer ids: CustomerID {dup['shown']} appears {dup['n']} times")
    return rows


def sort_customers(typed: DataFrame) -> DataFrame:
    return typed.orderBy(*SORT_KEYS)


# The published-output contract (docs/pipeline.md "What a reader can rely on"): each run writes its
# own RUNS/<run id>/ inside --output and is published by overwriting the small LATEST pointer last.
LATEST = "_LATEST"
RUNS = "runs"
KEPT_RUNS = 2  # the published run and the one before it, which a reader may still be reading


def published_run(pointer_text: str) -> str:
    """The run prefix (relative to the output location, ending in "/") a LATEST pointer names."""
    return json.loads(pointer_text)["run"]


def pointer_text(run: str, rows: int) -> str:
    columns = [{"name": f.name, "type": f.dataType.simpleString()} for f in OUTPUT_SCHEMA.fields]
    return json.dumps({"run": run, "rows": rows, "sorted_by": list(SORT_KEYS), "columns": columns}) + "\n"


def _read_text(spark: SparkSession, path) -> str | None:
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        return None
    jvm = spark.sparkContext._jvm
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(fs.open(path), "UTF-8"))
    try:
        return "\n".join(iter(reader.readLine, None))
    finally:
        reader.close()


def _new_run_id() -> str:
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{uuid.uuid4().hex[:8]}"  # sorts by time


def publish(spark: SparkSession, frame: DataFrame, output: str, rows: int) -> str:
    """Write ``frame`` as a new run inside ``output`` and publish it; return the run's location.

    S3 has no rename, so nothing is moved: the run's files are written where they stay, and the
    LATEST pointer -- one small object, replaced by a single PUT, which S3 readers see whole or not
    at all -- is written only after Spark committed every part. Until then readers keep following
    the previous pointer; a failed run removes its own files and never touches the published run.
    """
    root, fs = _hadoop_path(spark, output.rstrip("/"))
    jvm = spark.sparkContext._jvm
    run = f"{RUNS}/{_new_run_id()}/"
    run_path = jvm.org.apache.hadoop.fs.Path(root, run)
    pointer = jvm.org.apache.hadoop.fs.Path(root, LATEST)
    published = False
    try:
        frame.write.mode("error").parquet(run_path.toString())
        previous_text = _read_text(spark, pointer)
        stream = fs.create(pointer, True)
        try:
            stream.write(bytearray(pointer_text(run, rows).encode("utf-8")))
        finally:
            stream.close()
        published = True
    finally:
        if not published and fs.exists(run_path):
            fs.delete(run_path, True)
    kept = {run.rstrip("/")}
    if previous_text:
        # An unreadable old pointer names nothing worth keeping.
        with contextlib.suppress(ValueError, KeyError, TypeError):
            kept.add(published_run(previous_text).rstrip("/"))
    runs_dir = jvm.org.apache.hadoop.fs.Path(root, RUNS)
    for status in fs.listStatus(runs_dir):
        name = f"{RUNS}/{status.getPath().getName()}"
        if status.isDirectory() and name not in kept:
            fs.delete(status.getPath(), True)  # older runs and leftovers of failed ones
    return run_path.toString()


def run(spark: SparkSession, *, source_table: str | None, source_csv: str | None, output: str) -> tuple[int, str]:
    """Validate, sort and publish; return the rows written and where. Raises InputError."""
    raw, typed = _read_table(spark, source_table) if source_table else read_csv(spark, source_csv)
    # Validation and the sort both need the parsed input: parse it once, keep the compact typed form.
    typed = typed.persist()
    try:
        rows = validate(raw, typed, "table" if source_table else "csv")
        return rows, publish(spark, sort_customers(typed), output, rows)
    finally:
        typed.unpersist()


def report_failure(spark: SparkSession, problem: InputError, summary: str | None) -> None:
    """The one ``error:`` line on stderr and, when asked, as a small object DAG_1's mail reads.

    With ``--deploy-mode cluster`` the driver's stderr ends up in YARN container logs, which EMR's
    step FailureDetails do not quote; the summary (``--failure-summary``, under the cluster's log
    prefix) carries the reason to the outcome mail instead.
    """
    line = f"error: {problem}"
    print(line, file=sys.stderr)
    if summary:
        path, fs = _hadoop_path(spark, summary)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray((line + "\n").encode("utf-8")))
        finally:
            stream.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source-table", help="Hive table DB.TABLE (typed, see load_customers.hql)")
    source.add_argument("--source-csv", help="CSV file or prefix, local path or s3:// URI")
    parser.add_argument(
        "--output", required=True, help=f"output location: runs under {RUNS}/, the published one named by {LATEST}"
    )
    parser.add_argument(
        "--failure-summary", help="object to write the error line to on bad input (e.g. under the log prefix)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, spark: SparkSession | None = None) -> int:
    args = parse_args(argv)
    own_session = spark is None
    if own_session:
        builder = SparkSession.builder.appName("sort_by_spending_score")
        if args.source_table:
            builder = builder.enableHiveSupport()
        spark = builder.getOrCreate()
    try:
        rows, location = run(spark, source_table=args.source_table, source_csv=args.source_csv, output=args.output)
    except InputError as problem:
        report_failure(spark, problem, args.failure_summary)
        return 2
    finally:
        if own_session:
            spark.stop()
    print(
        f"wrote {rows} customers sorted by spending score to {location} (published as {args.output.rstrip('/')}/{LATEST})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
