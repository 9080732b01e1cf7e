"""load_customers.hql run by the real spark-sql binary (Hive support) and the sort job reading its table
through a real spark-submit -- the local stand-ins for the EMR steps' `hive -f` and `spark-submit`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pyspark
import pytest
from pipeline_support import DATASET, EMR_STEPS, EXPECTED_SCHEMA, dataset_rows

SPARK_BIN = Path(pyspark.__file__).parent / "bin"


@pytest.fixture(scope="module")
def hive(tmp_path_factory):
    """A scratch metastore + warehouse; returns a function running a spark tool with it."""
    root = tmp_path_factory.mktemp("hive")
    conf = [
        "--master", "local[2]",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.sql.shuffle.partitions=2",
        "--conf", "spark.sql.catalogImplementation=hive",
        "--conf", f"spark.sql.warehouse.dir={root / 'warehouse'}",
        "--conf", f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={root}",
    ]  # fmt: skip
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_HOME": str(SPARK_BIN.parent)}

    def run(tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SPARK_BIN / tool), *conf, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
        )

    run.root = root
    return run


@pytest.fixture(scope="module")
def loaded(hive):
    """The real CSV, CRLF-converted and with the documented `Gender` header, loaded by `spark-sql -f`."""
    input_dir = hive.root / "input" / "mall_customers"
    input_dir.mkdir(parents=True)
    shutil.copy(DATASET, input_dir / "Mall_Customers.csv")
    variant = "\ufeff" + DATASET.read_text().replace("Genre", "Gender").replace("\n", "\r\n")
    (input_dir / "Mall_Customers_crlf_bom.csv").write_bytes(variant.encode("utf-8"))
    result = hive(
        "spark-sql",
        "-f", str(EMR_STEPS / "load_customers.hql"),
        "--hivevar", f"input_location={input_dir.as_uri()}/",
        "--hivevar", "database=mall",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return input_dir


def test_ddl_builds_the_typed_table_from_the_csv(hive, loaded):
    query = "SELECT count(*), count(DISTINCT customer_id), sum(spending_score), min(spending_score), max(spending_score), sum(age), sum(annual_income_k_usd), count(DISTINCT gender) FROM mall.customers; DESCRIBE mall.customers;"
    result = hive("spark-sql", "-S", "-e", query)

    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    rows = dataset_rows()
    # Both files (LF and CRLF+BOM+Gender) land typed, headers dropped: every customer twice.
    expected = [
        2 * len(rows), len(rows), 2 * sum(r["spending_score"] for r in rows), 1, 99,
        2 * sum(r["age"] for r in rows), 2 * sum(r["annual_income_k_usd"] for r in rows), 2,
    ]  # fmt: skip
    assert lines[0].split("\t") == [str(v) for v in expected]
    described = [line.split("\t")[:2] for line in lines[1:6]]
    assert [[c.strip() for c in pair] for pair in described] == [
        ["customer_id", "int"], ["gender", "string"], ["age", "int"], ["annual_income_k_usd", "int"], ["spending_score", "int"],
    ]  # fmt: skip


def test_ddl_is_rerunnable_and_sort_job_reads_the_table_via_spark_submit(hive, loaded, tmp_path):
    (loaded / "Mall_Customers_crlf_bom.csv").unlink()  # one copy only, so customer ids are unique again
    rerun = hive(
        "spark-sql", "-f", str(EMR_STEPS / "load_customers.hql"),
        "--hivevar", f"input_location={loaded.as_uri()}/", "--hivevar", "database=mall",
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]

    output = tmp_path / "customers_by_spending_score"
    result = hive("spark-submit", str(EMR_STEPS / "sort_by_spending_score.py"), "--source-table", "mall.customers", "--output", str(output))

    assert result.returncode == 0, result.stderr[-3000:]
    table = pq.read_table(output)
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    assert table.to_pylist() == sorted(dataset_rows(), key=lambda r: (r["spending_score"], r["customer_id"]))


def test_spark_submit_reports_bad_input_in_one_error_line(hive, tmp_path):
    result = hive("spark-submit", str(EMR_STEPS / "sort_by_spending_score.py"), "--source-table", "mall.nowhere", "--output", str(tmp_path / "out"))

    # spark-submit's PythonRunner merges the Python driver's stderr into its stdout.
    output_lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 2
    assert [line for line in output_lines if line.startswith("error:")] == [
        "error: input not found: Hive table mall.nowhere"
    ]
    assert not (tmp_path / "out").exists()
