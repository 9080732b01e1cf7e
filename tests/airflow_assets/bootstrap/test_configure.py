import json
import subprocess
import sys

import pytest
from dotenv import dotenv_values

from .conftest import BOOTSTRAP_DIR

sys.path.insert(0, str(BOOTSTRAP_DIR.parent.parent))
from rehearsal.supervisor import Unit  # noqa: E402
from stacks.constructs.shared_fs import AIRFLOW_GID, AIRFLOW_UID  # noqa: E402


def _snapshot(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_configure_twice_changes_nothing(bootstrap):
    first = bootstrap.run("configure")
    assert first.returncode == 0, first.stderr
    before = _snapshot(bootstrap.home) | _snapshot(bootstrap.tmp_path / "efs")
    second = bootstrap.run("configure")
    assert second.returncode == 0, second.stderr
    assert "configuration unchanged" in second.stderr
    assert _snapshot(bootstrap.home) | _snapshot(bootstrap.tmp_path / "efs") == before


def test_rendered_settings_fetch_every_secret_at_run_time(bootstrap):
    assert bootstrap.run("configure").returncode == 0
    settings = dotenv_values(bootstrap.home / "airflow.env")
    for key in (
        "AIRFLOW__CORE__FERNET_KEY_CMD",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD",
        "AIRFLOW__CELERY__BROKER_URL_CMD",
        "AIRFLOW__CELERY__RESULT_BACKEND_CMD",
        "AIRFLOW__API__SECRET_KEY_CMD",
        "AIRFLOW__API_AUTH__JWT_SECRET_CMD",
    ):
        assert "airflow_secret.py" in settings[key], key
    assert not any(
        k in settings
        for k in (
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CELERY__BROKER_URL",
            "AIRFLOW__API_AUTH__JWT_SECRET",
        )
    )
    assert "fernet-key fernet-seed" in settings["AIRFLOW__CORE__FERNET_KEY_CMD"]
    assert settings["AIRFLOW__CELERY__BROKER_URL_CMD"].endswith("--tls")
    assert "--ca-bundle /etc/pki/rds/global-bundle.pem" in settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
    assert settings["AIRFLOW__CELERY__RESULT_BACKEND_CMD"] == settings["AIRFLOW__CELERY__BROKER_URL_CMD"]
    assert settings["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://10.0.1.10:8080/execution/"
    assert settings["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "s3://logs/airflow/"
    assert settings["AIRFLOW_CONN_AWS_DEFAULT"] == "aws://?region_name=us-west-2"
    # The pipeline settings are a Variable in the metadata DB (written by `start`), not an environment
    # variable that would silently win over what the UI and the REST API show.
    assert "AIRFLOW_VAR_EMR_PIPELINE" not in settings


def test_rendered_env_file_reads_the_same_in_bash_and_systemd_parsers(bootstrap):
    bootstrap.params["EMR_PIPELINE_JSON"] = '{"note": "double \\"quotes\\" & spaces; #hash", "n": 1}'
    assert bootstrap.run("configure").returncode == 0
    env_file = bootstrap.home / "airflow.env"
    dumped = subprocess.run(
        [
            "bash",
            "-c",
            f'set -a; . "{env_file}"; set +a; {sys.executable} -c "import os,json; print(json.dumps(dict(os.environ)))"',
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    from_bash = json.loads(dumped)
    for key, value in dotenv_values(env_file).items():
        assert from_bash[key] == value, key


def _units(bootstrap, **params):
    bootstrap.params.update(params)
    result = bootstrap.run("configure", role=bootstrap.params["AIRFLOW_ROLE"])
    assert result.returncode == 0, result.stderr
    return sorted(p.name for p in (bootstrap.home / "units").glob("*.service"))


def test_each_role_runs_its_processes(bootstrap):
    assert _units(bootstrap) == [
        "airflow-dag-processor.service",
        "airflow-scheduler.service",
        "airflow-triggerer.service",
    ]


def test_worker_runs_celery_and_flower(bootstrap):
    assert _units(bootstrap, AIRFLOW_ROLE="worker") == ["airflow-celery-worker.service", "airflow-flower.service"]


def test_second_scheduler_on_the_api_server_node_comes_and_goes_with_scheduler_count(bootstrap):
    assert _units(bootstrap, AIRFLOW_ROLE="api-server", SCHEDULER_COUNT="2") == [
        "airflow-api-server.service",
        "airflow-scheduler.service",
    ]
    assert _units(bootstrap, SCHEDULER_COUNT="1") == ["airflow-api-server.service"]


def test_embedded_node_colocates_every_process_on_sqlite(bootstrap):
    units = _units(bootstrap, COLOCATED_ROLES="api-server", EXECUTOR="LocalExecutor", DB_KIND="sqlite")
    assert units == [
        "airflow-api-server.service",
        "airflow-dag-processor.service",
        "airflow-scheduler.service",
        "airflow-triggerer.service",
    ]
    settings = dotenv_values(bootstrap.home / "airflow.env")
    assert settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:////")
    assert "AIRFLOW__CELERY__BROKER_URL_CMD" not in settings


def test_units_are_runnable_by_the_rehearsal_supervisor(bootstrap):
    _units(bootstrap, AIRFLOW_ROLE="api-server")
    unit = Unit.parse(bootstrap.home / "units" / "airflow-api-server.service")
    # Secrets are resolved once per service start by the helper, which then execs airflow.
    assert unit.exec_start[1].endswith("airflow_secret.py") and unit.exec_start[2:4] == ["exec", "--"]
    assert unit.exec_start[4:8] == [f"{sys.prefix}/bin/airflow", "api-server", "--host", "0.0.0.0"]
    assert unit.restart_on_failure
    assert unit.environment_file == bootstrap.home / "airflow.env"
    assert unit.exec_start_pre[0][2:4] == ["exec", "--"]
    assert unit.exec_start_pre[0][5:7] == [str(BOOTSTRAP_DIR / "admin_user.py"), "admin-password"]


def test_exec_resolves_every_cmd_option_once_and_drops_the_cmd(tmp_path):
    probe = tmp_path / "env.json"
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW__CORE__FERNET_KEY_CMD": "echo -n from-command",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    subprocess.run(
        [
            sys.executable,
            str(BOOTSTRAP_DIR / "airflow_secret.py"),
            "exec",
            "--",
            sys.executable,
            "-c",
            f"import os,json; open({str(probe)!r},'w').write(json.dumps(dict(os.environ)))",
        ],
        env=env,
        check=True,
    )
    seen = json.loads(probe.read_text())
    assert seen["AIRFLOW__CORE__FERNET_KEY"] == "from-command"
    assert "AIRFLOW__CORE__FERNET_KEY_CMD" not in seen
    assert seen["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_only_the_scheduler_node_syncs_dags(bootstrap):
    dags = bootstrap.tmp_path / "efs" / "dags"
    assert bootstrap.run("configure").returncode == 0
    assert sorted(p.name for p in dags.glob("*.py")) == sorted(
        p.name for p in (BOOTSTRAP_DIR.parent / "dags").glob("*.py")
    )
    worker_dags = bootstrap.tmp_path / "worker-dags"
    bootstrap.params.update(AIRFLOW_ROLE="worker", DAGS_FOLDER=str(worker_dags))
    assert bootstrap.run("configure").returncode == 0
    assert not list(worker_dags.iterdir())


def test_missing_parameter_is_named(bootstrap):
    del bootstrap.params["DB_SECRET_ID"]
    result = bootstrap.run("configure")
    assert result.returncode != 0
    assert "lacks DB_SECRET_ID" in result.stderr


def test_entry_refuses_a_node_env_of_another_role(bootstrap):
    result = bootstrap.run("configure", role="worker")
    assert result.returncode != 0
    assert "AIRFLOW_ROLE=scheduler, but this is the worker entry" in result.stderr


def test_unknown_phase_prints_usage(bootstrap):
    result = bootstrap.run("deploy")
    assert result.returncode == 2
    assert "install|configure|start|health|all" in result.stderr


def test_health_fails_with_one_line_per_unhealthy_process(bootstrap):
    bootstrap.params.update(AIRFLOW_ROLE="api-server", API_SERVER_PORT="9", HEALTH_TIMEOUT_SECONDS="0")
    assert bootstrap.run("configure").returncode == 0
    result = bootstrap.run("health")
    assert result.returncode != 0
    assert "unhealthy: api-server:" in result.stderr
    assert "node is not healthy" in result.stderr.splitlines()[-1]


@pytest.fixture
def access_point_mount(tmp_path):
    """A directory that behaves like the EFS access point: every file is owned by the forced uid/gid
    and chown/chgrp are refused, even for root (the rehearsal's own mount)."""
    import os

    from rehearsal.access_point import AccessPointMount, AccessPointUnavailable

    if os.geteuid() != 0:
        pytest.skip("the bootstrap runs as root (cfn-init); only root's rsync tries to chown")
    mount = AccessPointMount(tmp_path / "efs-backing", tmp_path / "efs", str(AIRFLOW_UID), str(AIRFLOW_GID))
    try:
        mount.mount()
    except AccessPointUnavailable as error:
        pytest.skip(str(error))
    try:
        yield mount.mount_point
    finally:
        mount.unmount()


def test_dag_sync_works_where_chown_is_refused_like_the_efs_access_point(bootstrap, access_point_mount):
    dags = access_point_mount / "dags"
    bootstrap.params["DAGS_FOLDER"] = str(dags)
    result = bootstrap.run("configure")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dags.glob("*.py")) == sorted(
        p.name for p in (BOOTSTRAP_DIR.parent / "dags").glob("*.py")
    )
    assert {(p.stat().st_uid, p.stat().st_gid) for p in dags.rglob("*")} == {(AIRFLOW_UID, AIRFLOW_GID)}
    # A second sync (cfn-hup after a DAG edit) goes through the same refusal.
    assert bootstrap.run("configure").returncode == 0
