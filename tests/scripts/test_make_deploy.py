"""`make deploy` with the CDK CLI replaced by a stand-in that does what the CLI does before deploying:
run the --app command with the -c values in CDK_CONTEXT_JSON and an output directory in CDK_OUTDIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stacks.config import REPO_ROOT

CDK_CLI_STAND_IN = f"""#!{sys.executable}
import json, os, subprocess, sys
args = sys.argv[1:]
app = args[args.index("--app") + 1]
context = dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg in ("-c", "--context"))
print("stand-in cdk:", " ".join(arg for arg in args if arg != app), flush=True)
env = {{**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": os.environ["STAND_IN_OUTDIR"]}}
sys.exit(subprocess.run(app, shell=True, env=env).returncode)
"""


def make_deploy(tmp_path: Path, *context: str) -> subprocess.CompletedProcess:
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    (stand_ins / "npx").write_text(CDK_CLI_STAND_IN)
    (stand_ins / "npx").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"PATH": f"{stand_ins}:{os.environ['PATH']}", "STAND_IN_OUTDIR": str(tmp_path / "cdk.out")}
    return subprocess.run(
        # -o: the virtualenv counts as installed (the test checks the deploy guard, not the install step).
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO_ROOT),
            "-o",
            ".venv/.installed",
            "deploy",
            f"CONTEXT={' '.join(context)}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_deploy_refuses_the_placeholder_addresses_naming_the_options(tmp_path):
    result = make_deploy(tmp_path)
    assert result.returncode != 0
    assert "-c sender_email=" in result.stderr and "-c alert_email=" in result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cdk.out").exists()


def test_make_deploy_refuses_one_placeholder_left(tmp_path):
    result = make_deploy(tmp_path, "-c sender_email=airflow@corp.dev")
    assert result.returncode != 0
    assert "-c alert_email=" in result.stderr and "-c sender_email=" not in result.stderr, result.stderr
