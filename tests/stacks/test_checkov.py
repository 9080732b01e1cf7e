"""checkov (a maintained IaC policy scanner) over every synthesized template.

No check may fail. A finding the project accepts is acknowledged on the resource itself
(CloudFormation Metadata `checkov: skip`, written by stacks.nag.acknowledge_checkov) with its reason,
so an acknowledgment covers that one resource, never the same check elsewhere.
checkov lives in its own virtualenv (.venv-checkov, made by `make venv` from requirements-checkov.txt)
because its pins conflict with the CDK/Airflow set.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from stacks.config import REPO_ROOT

from .infra_support import VARIANTS

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def checkov_reports(assemblies) -> dict[str, dict]:
    """One checkov process for every variant's template: file name -> that file's results."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make venv` (it installs requirements-checkov.txt)")
    files = [str(assemblies[variant].template_path) for variant in VARIANTS]
    # BC_SKIP_MAPPING and --skip-download keep checkov offline (no guideline or policy downloads).
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "cloudformation",
            "--compact",
            "--skip-download",
            "--output",
            "json",
            *(arg for path in files for arg in ("--file", path)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_file: dict[str, dict] = {path: {"failed": [], "skipped": [], "passed": 0} for path in files}
    for report in reports:
        for outcome in ("failed", "skipped"):
            for check in report["results"].get(f"{outcome}_checks", []):
                by_file[check["file_abs_path"]][outcome].append(check)
        for check in report["results"].get("passed_checks", []):
            by_file[check["file_abs_path"]]["passed"] += 1
    return {variant: by_file[str(assemblies[variant].template_path)] for variant in VARIANTS}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_checkov_finds_no_unacknowledged_failure(checkov_reports, variant):
    report = checkov_reports[variant]
    assert report["passed"] > 100, "checkov evaluated (almost) nothing: the scan itself is broken"
    failures = sorted(f"{check['check_id']} {check['resource']}: {check['check_name']}" for check in report["failed"])
    assert failures == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_checkov_acknowledgment_has_a_reason(checkov_reports, variant):
    for check in checkov_reports[variant]["skipped"]:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 40 and not reason.lower().startswith(("todo", "n/a", "suppress")), (
            check["check_id"],
            check["resource"],
            reason,
        )
