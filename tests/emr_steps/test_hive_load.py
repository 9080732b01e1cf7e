"""The two EMR steps of dag_2 as real spark-submits with Hive support, on each Spark line: the load into
the Hive table (load_customers.py) and the sort job reading that table."""

from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest

from ..pipeline_support import DATASET, EMR_STEPS, EXPECTED_SCHEMA, SUBMIT_CONF, dataset_rows, spark_tool

SORT_JOB = EMR_STEPS / "sort_by_spending_score.py"
LOAD_JOB = EMR_STEPS / "load_customers.py"


def rfc4180(text: str) -> str:
    """The dataset as an RFC 4180 writer may emit it: BOM, every field quoted, CRLF."""
    lines = ['"' + '","'.join(line.split(",")) + '"' for line in text.splitlines()]
    return "\ufeff" + "\r\n".join(lines) + "\r\n"


@pytest.fixture(scope="module")
def hive(spark_line, tmp_path_factory):
    """A scratch metastore + warehouse; returns a function running a spark tool of this line with it."""
    root = tmp_path_factory.mktemp("hive")
    conf = [
        *SUBMIT_CONF,
        "--conf", "spark.sql.catalogImplementation=hive",
        "--conf", f"spark.sql.warehouse.dir={root / 'warehouse'}",
        "--conf", f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={root}",
    ]  # fmt: skip

    def run(tool: str, *args: str):
        return spark_tool(spark_line, tool, *conf, *args, cwd=root)

    run.root = root
    return run


def load(hive, source):
    return hive(
        "spark-submit", "--py-files", str(SORT_JOB), str(LOAD_JOB), "--input", str(source), "--database", "mall"
    )


def error_lines(result) -> list[str]:
    # spark-submit's PythonRunner merges the Python driver's stderr into its stdout.
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error:")]


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def loaded(hive):
    """An RFC 4180 copy of the dataset, beside other files that must not reach the table."""
    folder = hive.root / "data"
    folder.mkdir()
    (folder / "Mall_Customers.csv").write_bytes(rfc4180(DATASET.read_text()).encode("utf-8"))
    shutil.copy(DATASET, folder / "Mall_Customers_copy.csv")  # would double every row if read
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / "data_$folder$").write_bytes(b"")
    (folder / "notes.txt").write_text("not,a,customer\n")
    before = digest(folder)
    result = load(hive, folder / "Mall_Customers.csv")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return folder, before, result


def test_table_holds_exactly_the_named_objects_rows_typed(hive, loaded):
    folder, before, result = loaded
    assert f"loaded 200 customers from {folder / 'Mall_Customers.csv'} into mall.customers" in result.stdout
    table = pq.read_table(hive.root / "warehouse" / "mall.db" / "customers")
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    assert sorted(table.to_pylist(), key=lambda r: r["customer_id"]) == dataset_rows()
    assert digest(folder) == before, "the input folder is never moved, renamed or modified"


def test_sort_job_reads_the_table_via_spark_submit(hive, loaded, tmp_path):
    output = tmp_path / "customers_by_spending_score"
    result = hive("spark-submit", str(SORT_JOB), "--source-table", "mall.customers", "--output", str(output))

    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run = json.loads((output / "_LATEST").read_text())["run"]
    table = pq.read_table(output / run)
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    assert table.to_pylist() == sorted(dataset_rows(), key=lambda r: (r["spending_score"], r["customer_id"]))


def test_malformed_csv_exit_2_one_error_line_with_line_number_table_untouched(hive, loaded, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = DATASET.read_text().splitlines()
    lines[41] = '42,"Male,24,38,92'  # line 42 of the file (the header is line 1)
    bad.write_text("\n".join(lines) + "\n")
    summary = tmp_path / "errors" / "load.txt"
    result = hive(
        "spark-submit", "--py-files", str(SORT_JOB), str(LOAD_JOB),
        "--input", str(bad), "--database", "mall", "--failure-summary", str(summary),
    )  # fmt: skip

    assert result.returncode == 2, (result.stdout + result.stderr)[-3000:]
    assert error_lines(result) == [
        "error: line 42: unbalanced quote (a quoted field must end with a quote before the line ends)"
    ]
    assert summary.read_text() == error_lines(result)[0] + "\n"
    assert pq.read_table(hive.root / "warehouse" / "mall.db" / "customers").num_rows == 200


def test_spark_submit_reports_bad_input_in_one_error_line(hive, tmp_path):
    result = hive("spark-submit", str(SORT_JOB), "--source-table", "mall.nowhere", "--output", str(tmp_path / "out"))

    assert result.returncode == 2
    assert error_lines(result) == ["error: input not found: Hive table mall.nowhere"]
    assert not (tmp_path / "out").exists()
