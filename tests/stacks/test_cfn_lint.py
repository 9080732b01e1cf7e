"""cfn-lint over every synthesized template: no errors, no warnings (ignores live in .cfnlintrc.yaml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config import REPO_ROOT

from .infra_support import VARIANTS

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cfn_lint_is_clean(assemblies, variant):
    result = subprocess.run(
        [
            str(CFN_LINT),
            "--config-file",
            str(REPO_ROOT / ".cfnlintrc.yaml"),
            "--format",
            "parseable",
            str(assemblies[variant].template_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.stdout.strip() == "" and result.returncode == 0, result.stdout + result.stderr


def test_every_cfn_lint_ignore_is_justified():
    lines = (REPO_ROOT / ".cfnlintrc.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        if (
            line.strip().startswith("- ")
            and lines[index - 1].strip().startswith("#")
            and "ignore_checks" in "\n".join(lines[:index])
        ):
            continue
        if line.strip().startswith("- W") or line.strip().startswith("- E"):
            pytest.fail(f".cfnlintrc.yaml ignores {line.strip()} without a comment saying why")
