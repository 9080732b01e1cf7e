"""Synthesis needs no AWS credentials and does no lookups: `python app.py` and the pinned CDK CLI."""

from __future__ import annotations

import json
import os
import subprocess

from stacks.config import REPO_ROOT

CDK_CLI = "aws-cdk@2.1148.1"


def credential_free_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    # Point the SDK at empty config so nothing from this machine's ~/.aws can leak in.
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    return env


def assert_offline_assembly(outdir):
    template = json.loads((outdir / "AirflowEmr-dev.template.json").read_text())
    assert len(template["Resources"]) > 100
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert "missing" not in manifest, f"synthesis wanted context lookups: {manifest.get('missing')}"
    stack = manifest["artifacts"]["AirflowEmr-dev"]
    assert stack["environment"] == "aws://unknown-account/us-west-2"


def test_pinned_cdk_cli_synthesizes_quietly_without_credentials(tmp_path):
    """The CLI runs `python app.py` (cdk.json's app) in this environment: one synthesis proves both offline."""
    outdir = tmp_path / "cdk.out"
    env = credential_free_env(tmp_path) | {"npm_config_update_notifier": "false"}
    # The CLI reads cdk.json ("app": ".venv/bin/python app.py") from the repo root.
    result = subprocess.run(
        ["npx", "--yes", CDK_CLI, "synth", "-q", "--output", str(outdir), "--no-notices", "--no-version-reporting"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert_offline_assembly(outdir)
