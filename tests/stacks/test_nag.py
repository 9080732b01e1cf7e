"""cdk-nag AwsSolutionsChecks: zero unacknowledged findings, and every acknowledgment is needed."""

from __future__ import annotations

import json
import re

import pytest

import stacks.nag
from stacks.config import REPO_ROOT

from .infra_support import VARIANTS, synthesize


def violations(report: dict, plugin: str = "AwsSolutions") -> set[tuple[str, str]]:
    return {
        (violation["ruleName"], construct["constructPath"])
        for plugin_report in report["pluginReports"]
        if plugin_report["pluginName"] == plugin
        for violation in plugin_report["violations"]
        for construct in violation["violatingConstructs"]
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_synthesizes_with_zero_unacknowledged_findings(assemblies, variant):
    # Synthesis itself fails on a finding; the report must not hold one either.
    report = json.loads((assemblies[variant].outdir / "validation-report.json").read_text())
    assert violations(report) == set()
    assert all(r["conclusion"] == "success" for r in report["pluginReports"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_acknowledgments_name_exact_findings_with_concrete_reasons(assemblies, variant):
    acks = assemblies[variant].acknowledgments()
    assert acks
    for path, finding, reason in acks:
        assert re.fullmatch(r"AwsSolutions-[A-Z]+\d+(\[.+\])?", finding), finding
        assert len(reason) >= 60 and not reason.lower().startswith(("todo", "n/a", "suppress")), (path, finding, reason)
    assert len({(p, f) for p, f, _ in acks}) == len(acks)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_acknowledgment_matches_a_real_finding_and_covers_all_of_them(assemblies, variant, tmp_path, monkeypatch):
    # With acknowledgments addressed to another plugin name, cdk-nag reports every finding it has.
    monkeypatch.setattr(stacks.nag, "PLUGIN", "NotAwsSolutions")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synthesize(tmp_path, VARIANTS[variant])
    findings = violations(json.loads((tmp_path / "validation-report.json").read_text()))
    assert findings, "cdk-nag reported nothing: the check itself is broken"

    acks = [(path, finding) for path, finding, _ in assemblies[variant].acknowledgments()]

    def covered_by(ack_path: str, finding_path: str) -> bool:
        return finding_path == ack_path or finding_path.startswith(ack_path + "/")

    uncovered = {f for f in findings if not any(f[0] == finding and covered_by(path, f[1]) for path, finding in acks)}
    assert uncovered == set()
    unused = [a for a in acks if not any(a[1] == rule and covered_by(a[0], path) for rule, path in findings)]
    assert unused == []


def test_documented_acknowledgment_counts_are_the_measured_ones(assemblies):
    doc = (REPO_ROOT / "docs" / "infrastructure.md").read_text()
    dev_count = re.search(r"\*\*(\d+) cdk-nag acknowledgments\*\*", doc)
    prod_count = re.search(r"the `prod` variant (\d+)", doc)
    assert dev_count and prod_count, "docs/infrastructure.md must state both acknowledgment counts"
    assert int(dev_count.group(1)) == len(assemblies["dev"].acknowledgments())
    assert int(prod_count.group(1)) == len(assemblies["prod"].acknowledgments())


def test_app_exits_nonzero_without_a_traceback_on_a_finding(tmp_path, monkeypatch, capsys):
    import app

    monkeypatch.setattr(stacks.nag, "PLUGIN", "NotAwsSolutions")
    monkeypatch.setenv("CDK_OUTDIR", str(tmp_path / "out"))
    assert app.main() == 1
    assert "synthesis stopped by a validation finding" in capsys.readouterr().err
