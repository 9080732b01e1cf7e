"""emr_steps/sort_by_spending_score.py on the real dataset, its variants and bad input.

Every case runs under spark-submit of each Spark line (the project's pyspark and the configured EMR
release's, pipeline_support.SPARK_LINES), all cases of one line in one spark-submit (job_batch.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ..pipeline_support import DATASET, EMR_STEPS, EXPECTED_SCHEMA, HEADER, dataset_rows, load_module, run_job_batch

JOB = EMR_STEPS / "sort_by_spending_score.py"
LATEST, RUNS = "_LATEST", "runs"  # checked against the job's own constants below


def data_lines() -> list[str]:
    return DATASET.read_text().splitlines()[1:]


def with_line(number: int, replacement: str) -> str:
    """The dataset with data row ``number`` (1-based) replaced."""
    lines = data_lines()
    lines[number - 1] = replacement
    return "\n".join([HEADER, *lines]) + "\n"


def expected_rows() -> list[dict]:
    return sorted(dataset_rows(), key=lambda r: (r["spending_score"], r["customer_id"]))


GOOD = DATASET.read_text()


def quoted(text: str, columns=range(5)) -> str:
    """Every line with the given columns quoted, as RFC 4180 writers do (header included)."""
    return "".join(
        ",".join(f'"{v}"' if i in columns else v for i, v in enumerate(line.split(","))) + "\n"
        for line in text.splitlines()
    )


VARIANTS = {
    "gender-header": GOOD.replace("Genre", "Gender"),
    "crlf": GOOD.replace("\n", "\r\n"),
    "bom": "\ufeff" + GOOD,
    "all-three": "\ufeff" + GOOD.replace("Genre", "Gender").replace("\n", "\r\n") + "\r\n",
    # RFC 4180 (issue 12): quoted values load as the values, not with their quotes.
    "quoted-gender": quoted(GOOD, columns={1}),
    "all-quoted": quoted(GOOD),
    "all-quoted-crlf-bom": "\ufeff" + quoted(GOOD).replace("\n", "\r\n"),
}
BAD_INPUTS = {
    "missing": (None, "error: input not found: "),
    "empty": ("", "error: input is empty: "),
    "header-only": (HEADER + "\n", "error: input has a header but no data rows"),
    "missing-column": (
        "CustomerID,Genre,Age,Annual Income (k$)\n0001,Male,19,15\n",
        "error: missing column 'Spending Score (1-100)' in header",
    ),
    "non-numeric-score": (
        with_line(7, "0007,Female,35,18,abc"),
        "error: row 7 (CustomerID 0007): Spending Score (1-100) is 'abc', not a whole number",
    ),
    "score-too-high": (
        with_line(3, "0003,Female,20,16,101"),
        "error: row 3 (CustomerID 0003): Spending Score (1-100) is 101, outside 1-100",
    ),
    "score-zero": (
        with_line(200, "0200,Male,30,137,0"),
        "error: row 200 (CustomerID 0200): Spending Score (1-100) is 0, outside 1-100",
    ),
    "missing-score": (
        with_line(5, "0005,Female,31,17,"),
        "error: row 5 (CustomerID 0005): Spending Score (1-100) is missing",
    ),
    "non-numeric-age": (
        with_line(9, "0009,Male,sixty,19,3"),
        "error: row 9 (CustomerID 0009): Age is 'sixty', not a whole number",
    ),
    "duplicate-ids": (
        with_line(10, "0004,Female,30,19,72"),
        "error: duplicate customer ids: CustomerID 0004 appears 2 times",
    ),
    # Malformed CSV: the physical line number (the header is line 1).
    "unbalanced-quote": (with_line(4, '0004,"Female,23,16,77'), "error: line 5: unbalanced quote"),
    "too-many-fields": (with_line(3, "0003,Female,20,16,6,extra"), "error: line 4: 6 fields, but the header has 5"),
    "too-few-fields": (with_line(150, "0150,Male,34,78"), "error: line 151: 4 fields, but the header has 5"),
    "quote-inside-plain-field": (
        with_line(2, '0002,Fe"male,21,15,81'),
        "error: line 3: a quote inside an unquoted field",
    ),
    "unbalanced-quote-in-header": (
        '"CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)\n1,Male,19,15,39\n',
        "error: line 1: unbalanced quote",
    ),
}
REORDERED = "Spending Score (1-100),CustomerID,Genre,Age,Annual Income (k$)\n50,0002,Female,30,40\n10,0001,Male,20,15\n"
# Commas and doubled quotes inside quoted fields, in the header and the values.
EMBEDDED = '"CustomerID","Genre","Age","Annual Income (k$)","Spending Score (1-100)"\r\n1,"Fe,""male""",19,15,39\r\n2,"Male, ""M""",21,15,81\r\n'

BAD_ROW = with_line(1, "0001,Male,19,15,abc")


def csv_run(source: str, **extra) -> dict:
    return {"source": source, **extra}


# case id -> runs, each reading a file of the case's folder and writing the case's "out" location.
CASES: dict[str, list[dict]] = {
    "real-dataset": [csv_run("input.csv")],
    "rerun-three-times": [csv_run("input.csv"), csv_run("input.csv"), csv_run("input.csv")],
    "reordered": [csv_run("input.csv")],
    "embedded": [csv_run("input.csv")],
    "bad-after-good": [csv_run("input.csv"), csv_run("bad.csv")],
    "failure-while-writing": [csv_run("input.csv"), csv_run("input.csv", fail_writing_customer=150)],
    **{f"variant-{name}": [csv_run("input.csv")] for name in VARIANTS},
    **{f"bad-{name}": [csv_run("input.csv")] for name in BAD_INPUTS},
}
CONTENT = {
    "reordered": {"input.csv": REORDERED},
    "embedded": {"input.csv": EMBEDDED},
    "bad-after-good": {"input.csv": GOOD, "bad.csv": BAD_ROW},
    **{f"variant-{name}": {"input.csv": text} for name, text in VARIANTS.items()},
    **{f"bad-{name}": ({"input.csv": text} if text is not None else {}) for name, (text, _) in BAD_INPUTS.items()},
}


@pytest.fixture(scope="module")
def batch(spark_line, tmp_path_factory):
    """Every case run once on this Spark line; (results by case id, folder of each case)."""
    root = tmp_path_factory.mktemp("sort-job")
    cases = []
    for case, runs in CASES.items():
        folder = root / case
        folder.mkdir()
        for name, text in CONTENT.get(case, {"input.csv": GOOD}).items():
            (folder / name).write_bytes(text.encode("utf-8"))
        cases.append({
            "id": case,
            "runs": [
                {"argv": ["--source-csv", str(folder / run["source"]), "--output", str(folder / "out")],
                 "fail_writing_customer": run.get("fail_writing_customer")}
                for run in runs
            ],
        })  # fmt: skip
    return run_job_batch(spark_line, JOB, cases, root), root


def published(output: Path) -> tuple[str, pa.Table]:
    """Follow the pointer like a reader: (run prefix, its table, parts in name order = sort order)."""
    run = json.loads((output / LATEST).read_text())["run"]
    return run, pq.read_table(output / run)


def run_folders(output: Path) -> list[str]:
    return sorted(f"{RUNS}/{p.name}/" for p in (output / RUNS).iterdir() if p.is_dir())


def test_contract_names_match_the_job():
    job = load_module(JOB)
    assert (job.LATEST, job.RUNS) == (LATEST, RUNS)


def test_real_dataset_sorted_by_score_then_id(batch):
    results, root = batch
    [result] = results["real-dataset"]
    output = root / "real-dataset" / "out"

    assert result["code"] == 0, result
    run, table = published(output)
    assert f"wrote 200 customers sorted by spending score to {output / run}".rstrip("/") in result["stdout"]
    assert table.schema.remove_metadata() == EXPECTED_SCHEMA
    rows = table.to_pylist()
    assert rows == expected_rows()  # every input row, right values, ascending, ties by customer id
    assert any(a["spending_score"] == b["spending_score"] for a, b in zip(rows, rows[1:], strict=False))  # ties exist
    assert run_folders(output) == [run] and (output / run / "_SUCCESS").is_file()
    pointer = json.loads((output / LATEST).read_text())
    assert pointer["rows"] == 200 and pointer["sorted_by"] == ["spending_score", "customer_id"]
    assert [(c["name"], c["type"]) for c in pointer["columns"]] == [
        ("customer_id", "int"), ("gender", "string"), ("age", "int"), ("annual_income_k_usd", "int"), ("spending_score", "int"),
    ]  # fmt: skip
    assert sorted(p.name for p in root.joinpath("real-dataset").iterdir()) == ["input.csv", "out"]  # nothing beside


def test_each_rerun_publishes_a_new_run_and_keeps_only_the_one_before(batch):
    results, root = batch
    output = root / "rerun-three-times" / "out"
    locations = [r["stdout"].split(" to ", 1)[1].split(" (published", 1)[0] for r in results["rerun-three-times"]]

    assert [r["code"] for r in results["rerun-three-times"]] == [0, 0, 0]
    run, table = published(output)
    assert str(output / run).rstrip("/") == locations[2].rstrip("/")
    assert [str(output / r).rstrip("/") for r in run_folders(output)] == [loc.rstrip("/") for loc in locations[1:]]
    assert table.to_pylist() == expected_rows()


def test_reordered_columns_are_read_by_name(batch):
    results, root = batch
    assert results["reordered"][0]["code"] == 0
    assert published(root / "reordered" / "out")[1].to_pylist() == [
        {"customer_id": 1, "gender": "Male", "age": 20, "annual_income_k_usd": 15, "spending_score": 10},
        {"customer_id": 2, "gender": "Female", "age": 30, "annual_income_k_usd": 40, "spending_score": 50},
    ]


def test_commas_and_doubled_quotes_inside_quoted_fields(batch):
    results, root = batch
    assert results["embedded"][0]["code"] == 0, results["embedded"]
    assert published(root / "embedded" / "out")[1].to_pylist() == [
        {"customer_id": 1, "gender": 'Fe,"male"', "age": 19, "annual_income_k_usd": 15, "spending_score": 39},
        {"customer_id": 2, "gender": 'Male, "M"', "age": 21, "annual_income_k_usd": 15, "spending_score": 81},
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_header_and_encoding_variants_give_the_same_result(batch, variant):
    results, root = batch
    assert results[f"variant-{variant}"][0]["code"] == 0, results[f"variant-{variant}"]
    assert published(root / f"variant-{variant}" / "out")[1].to_pylist() == expected_rows()


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_one_error_line_exit_2_nothing_written(batch, case):
    results, root = batch
    [result] = results[f"bad-{case}"]
    content, message = BAD_INPUTS[case]

    err = result["stderr"].strip().splitlines()
    assert result["code"] == 2, result
    assert len(err) == 1 and err[0].startswith(message), err
    assert sorted(p.name for p in (root / f"bad-{case}").iterdir()) == (["input.csv"] if content is not None else [])


def test_bad_input_keeps_the_published_run(batch):
    results, root = batch
    output = root / "bad-after-good" / "out"
    assert [r["code"] for r in results["bad-after-good"]] == [0, 2]
    run, table = published(output)
    assert run_folders(output) == [run] and table.to_pylist() == expected_rows()


def test_failure_while_writing_keeps_the_published_run_and_removes_its_own_files(batch):
    results, root = batch
    output = root / "failure-while-writing" / "out"
    good, failed = results["failure-while-writing"]

    assert good["code"] == 0
    assert failed["code"] is None and "disk on fire" in failed["exception"]
    run, table = published(output)
    assert run_folders(output) == [run], "the failed run's files are removed"
    assert table.to_pylist() == expected_rows()
