import shutil

import pytest


@pytest.fixture
def small_requirements(bootstrap):
    """A one-package requirements file, so the test exercises uv without installing all of Airflow."""
    requirements = bootstrap.tmp_path / "requirements-airflow.txt"
    requirements.write_text("six==1.17.0\n")
    bootstrap.params.update(AIRFLOW_VENV=str(bootstrap.tmp_path / "venv"), AIRFLOW_REQUIREMENTS=str(requirements))
    return requirements


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_install_builds_the_venv_with_uv_then_a_second_run_is_a_no_op(bootstrap, small_requirements):
    first = bootstrap.run("install")
    assert first.returncode == 0, first.stderr
    venv = bootstrap.tmp_path / "venv"
    assert list(venv.glob("lib/python3.11/site-packages/six.py"))
    assert "uv pip install" in first.stderr
    before = {p: p.stat().st_mtime_ns for p in venv.rglob("*")}
    second = bootstrap.run("install")
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in venv.rglob("*")} == before


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_changed_requirements_reinstall(bootstrap, small_requirements):
    assert bootstrap.run("install").returncode == 0
    small_requirements.write_text("six==1.16.0\n")
    result = bootstrap.run("install")
    assert result.returncode == 0, result.stderr
    assert "uv pip install" in result.stderr
    assert list((bootstrap.tmp_path / "venv").glob("lib/python3.11/site-packages/six-1.16.0.dist-info"))


def test_missing_requirements_file_is_named(bootstrap):
    bootstrap.params["AIRFLOW_REQUIREMENTS"] = str(bootstrap.tmp_path / "nope.txt")
    result = bootstrap.run("install")
    assert result.returncode != 0
    assert "nope.txt not found" in result.stderr


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_install_from_nothing_builds_the_pinned_airflow_venv(bootstrap):
    """As on a new EC2 node: a fresh venv from the pinned requirements (uv's cache may serve the files)."""
    import re
    import subprocess

    from .conftest import REPO_ROOT

    requirements = REPO_ROOT / "requirements-airflow.txt"
    venv = bootstrap.tmp_path / "fresh-venv"
    bootstrap.params.update(AIRFLOW_VENV=str(venv), AIRFLOW_REQUIREMENTS=str(requirements))
    result = bootstrap.run("install")
    assert result.returncode == 0, result.stderr
    assert f"creating venv {venv}" in result.stderr
    pinned = re.search(r"^apache-airflow(?:\[[^]]*\])?==(\S+)", requirements.read_text(), re.MULTILINE).group(1)
    probe = "import MySQLdb, importlib.metadata as m; print(m.version('apache-airflow'))"  # MySQLdb: the source build
    installed = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True)
    assert installed.stdout.strip() == pinned
