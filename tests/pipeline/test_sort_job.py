"""emr_steps/sort_by_spending_score.py on the real dataset, its variants and bad input (in-process Spark)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pipeline_support import DATASET, EXPECTED_SCHEMA, HEADER, dataset_rows

def data_lines() -> list[str]:
    return DATASET.read_text().splitlines()[1:]


def run_job(sort_job, spark, tmp_path: Path, *args: str):
    output = tmp_path / "out"
    code = sort_job.main([*args, "--output", str(output)], spark=spark)
    return code, output


def written(output: Path) -> pa.Table:
    return pq.read_table(output)  # files in name order: the global sort order


def test_real_dataset_sorted_by_score_then_id(sort_job, spark, tmp_path, capsys):
    code, output = run_job(sort_job, spark, tmp_path, "--source-csv", str(DATASET))

    assert code == 0
    assert "wrote 200 customers" in capsys.readouterr().out
    table = written(output)
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    rows = table.to_pylist()
    assert len(rows) == 200
    expected = sorted(dataset_rows(), key=lambda r: (r["spending_score"], r["customer_id"]))
    assert rows == expected  # every input row, right values, ascending, ties by customer id
    assert any(a["spending_score"] == b["spending_score"] for a, b in zip(rows, rows[1:]))  # ties exist
    assert not list(tmp_path.glob("_tmp_*")) and not list(tmp_path.glob("_old_*"))


def test_rerun_replaces_output_with_identical_content(sort_job, spark, tmp_path):
    _, output = run_job(sort_job, spark, tmp_path, "--source-csv", str(DATASET))
    first = written(output)
    (output / "stale-from-an-old-run.parquet").write_bytes(b"not parquet")
    code, _ = run_job(sort_job, spark, tmp_path, "--source-csv", str(DATASET))

    assert code == 0
    assert not (output / "stale-from-an-old-run.parquet").exists()
    assert written(output).equals(first)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda text: text.replace("Genre", "Gender"), id="gender-header"),
        pytest.param(lambda text: text.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda text: "\ufeff" + text, id="bom"),
        pytest.param(lambda text: "\ufeff" + text.replace("Genre", "Gender").replace("\n", "\r\n") + "\r\n", id="all-three"),
    ],
)
def test_header_and_encoding_variants_give_the_same_result(sort_job, spark, tmp_path, variant):
    source = tmp_path / "variant.csv"
    source.write_bytes(variant(DATASET.read_text()).encode("utf-8"))
    code, output = run_job(sort_job, spark, tmp_path, "--source-csv", str(source))

    assert code == 0
    assert written(output).to_pylist() == sorted(dataset_rows(), key=lambda r: (r["spending_score"], r["customer_id"]))


def test_reordered_columns_are_read_by_name(sort_job, spark, tmp_path):
    source = tmp_path / "reordered.csv"
    lines = ["Spending Score (1-100),CustomerID,Genre,Age,Annual Income (k$)", "50,0002,Female,30,40", "10,0001,Male,20,15"]
    source.write_text("\n".join(lines) + "\n")
    code, output = run_job(sort_job, spark, tmp_path, "--source-csv", str(source))

    assert code == 0
    assert written(output).to_pylist() == [
        {"customer_id": 1, "gender": "Male", "age": 20, "annual_income_k_usd": 15, "spending_score": 10},
        {"customer_id": 2, "gender": "Female", "age": 30, "annual_income_k_usd": 40, "spending_score": 50},
    ]


def with_line(number: int, replacement: str) -> str:
    """The dataset with data row ``number`` (1-based) replaced."""
    lines = data_lines()
    lines[number - 1] = replacement
    return "\n".join([HEADER, *lines]) + "\n"


BAD_INPUTS = {
    "missing": (None, "error: input not found: "),
    "empty": ("", "error: input is empty: "),
    "header-only": (HEADER + "\n", "error: input has a header but no data rows"),
    "missing-column": (
        "CustomerID,Genre,Age,Annual Income (k$)\n0001,Male,19,15\n",
        "error: missing column 'Spending Score (1-100)' in header",
    ),
    "non-numeric-score": (with_line(7, "0007,Female,35,18,abc"), "error: row 7 (CustomerID 0007): Spending Score (1-100) is 'abc', not a whole number"),
    "score-too-high": (with_line(3, "0003,Female,20,16,101"), "error: row 3 (CustomerID 0003): Spending Score (1-100) is 101, outside 1-100"),
    "score-zero": (with_line(200, "0200,Male,30,137,0"), "error: row 200 (CustomerID 0200): Spending Score (1-100) is 0, outside 1-100"),
    "missing-score": (with_line(5, "0005,Female,31,17,"), "error: row 5 (CustomerID 0005): Spending Score (1-100) is missing"),
    "non-numeric-age": (with_line(9, "0009,Male,sixty,19,3"), "error: row 9 (CustomerID 0009): Age is 'sixty', not a whole number"),
    "duplicate-ids": (with_line(10, "0004,Female,30,19,72"), "error: duplicate customer ids: CustomerID 0004 appears 2 times"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_one_error_line_nonzero_exit_nothing_written(sort_job, spark, tmp_path, capsys, case):
    content, message = BAD_INPUTS[case]
    source = tmp_path / "input.csv"
    if content is not None:
        source.write_text(content)
    code, output = run_job(sort_job, spark, tmp_path, "--source-csv", str(source))

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(message), err
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["input.csv"] if content is not None else [])


def test_bad_input_keeps_the_previous_output(sort_job, spark, tmp_path):
    _, output = run_job(sort_job, spark, tmp_path, "--source-csv", str(DATASET))
    before = written(output)
    bad = tmp_path / "bad.csv"
    bad.write_text(with_line(1, "0001,Male,19,15,abc"))
    code, _ = run_job(sort_job, spark, tmp_path, "--source-csv", str(bad))

    assert code == 2 and written(output).equals(before)


def test_failure_while_writing_leaves_no_partial_output(sort_job, spark, tmp_path, monkeypatch):
    from pyspark.sql import functions as F

    _, output = run_job(sort_job, spark, tmp_path, "--source-csv", str(DATASET))
    before = written(output)
    real_sort = sort_job.sort_customers

    def sort_then_crash(raw):
        frame = real_sort(raw)
        return frame.withColumn("age", F.when(F.col("customer_id") == 150, F.raise_error(F.lit("disk on fire"))).otherwise(F.col("age")))

    monkeypatch.setattr(sort_job, "sort_customers", sort_then_crash)
    with pytest.raises(Exception, match="disk on fire"):
        run_job(sort_job, spark, tmp_path, "--source-csv", str(DATASET))

    assert written(output).equals(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # staging removed
