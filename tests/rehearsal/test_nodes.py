"""The rehearsal's nodes against the synthesized template: node.env's key set, cfn-init's environment and
the EFS access point their DAG folder lies on.

These start no rehearsal: the bootstrap entry is a stand-in script, the template the cached synthesis.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from rehearsal import access_point
from rehearsal.access_point import AccessPointUnavailable
from rehearsal.aws.stack_template import synthesized_stack
from rehearsal.nodes import LOCAL_BOOTSTRAP_ENV, BootstrapError, RehearsalHost
from rehearsal.run import Rehearsal


@pytest.fixture
def scheduler(cluster_hosts) -> RehearsalHost:
    return next(node for node in cluster_hosts if node.role == "scheduler")


def test_cluster_node_env_has_exactly_the_template_keys(scheduler):
    scheduler.write_node_env()
    assert scheduler.node_env_file.is_file()


@pytest.mark.parametrize("change", ["extra", "missing"])
def test_a_node_env_key_the_template_does_not_share_stops_the_rehearsal(scheduler, change):
    if change == "extra":
        scheduler.params["DB_SSL_MODE"] = "off"
        expected = "only the rehearsal's has DB_SSL_MODE"
    else:
        del scheduler.params["AIRFLOW_REQUIREMENTS"]
        expected = "only the template's has AIRFLOW_REQUIREMENTS"
    with pytest.raises(BootstrapError, match=expected):
        scheduler.write_node_env()


def _stand_in(tmp_path: Path, body: str) -> Path:
    bootstrap_dir = tmp_path / "bootstrap"
    bootstrap_dir.mkdir()
    (bootstrap_dir / "scheduler.sh").write_text(f"set -euo pipefail\n{body}\n")
    return bootstrap_dir


def test_a_phase_sees_exactly_the_template_cfn_init_env(scheduler, tmp_path, monkeypatch):
    monkeypatch.setenv("REHEARSAL_LEAK_PROBE", "from the machine")
    seen = tmp_path / "env.txt"
    node = dataclasses.replace(scheduler, bootstrap_dir=_stand_in(tmp_path, f"env -0 > {seen}"))
    node.write_node_env()
    node.phase("install")
    env = dict(item.split("=", 1) for item in seen.read_text().split("\0") if item)
    # bash itself adds PWD, SHLVL and _ to what it was given.
    keys = set(env) - {"PWD", "SHLVL", "_"}
    template = node.template.command_env
    assert set(template) <= keys and keys - set(template) <= set(LOCAL_BOOTSTRAP_ENV), keys - set(template)
    assert env["NODE_ENV_FILE"] == str(node.node_env_file)
    assert env["HOME"] == template["HOME"] and env["LANG"] == template["LANG"]
    assert env["PATH"].endswith(template["PATH"])


def test_a_bootstrap_needing_a_variable_cfn_init_does_not_give_fails(scheduler, tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "root")  # a login shell's variable; cfn-init's `env` map has none
    node = dataclasses.replace(scheduler, bootstrap_dir=_stand_in(tmp_path, 'echo "installing as $USER"'))
    node.write_node_env()
    with pytest.raises(BootstrapError, match="USER: unbound variable"):
        node.phase("install")


def test_the_embedded_dag_folder_has_the_template_access_point_semantics(tmp_path, seeded_aws):
    """As on EFS: a file the node writes into its DAG folder is owned by the access point's PosixUser, and
    chown is refused (root's too, so an owner-keeping DAG sync fails here as on AWS)."""
    rehearsal = Rehearsal("embedded", workdir=tmp_path)
    rehearsal.aws = seeded_aws
    try:
        rehearsal.create_nodes()
        dags = Path(rehearsal.nodes[0].params["DAGS_FOLDER"])
        dags.mkdir(parents=True, exist_ok=True)
        dag = dags / "probe.py"
        dag.write_text("# probe\n")
        (posix_user,) = [
            resource["Properties"]["PosixUser"]
            for resource in synthesized_stack().template["Resources"].values()
            if resource["Type"] == "AWS::EFS::AccessPoint"
        ]
        owner = (int(posix_user["Uid"]), int(posix_user["Gid"]))
        assert {(path.stat().st_uid, path.stat().st_gid) for path in (dags, dag)} == {owner}
        with pytest.raises(PermissionError):
            os.chown(dag, os.getuid(), os.getgid())
    finally:
        rehearsal.aws = None  # the seeded stand-in has nothing to stop
        rehearsal.stop()
    assert not os.path.ismount(dags.parent), "the access point stays mounted after stop()"


def test_the_embedded_profile_refuses_to_start_without_fuse(tmp_path, monkeypatch):
    """No plain-folder fallback: it would accept the chown the access point refuses."""

    def started_anyway(*_args, **_kwargs):
        raise AssertionError("the rehearsal started without FUSE")

    monkeypatch.setattr(access_point, "FUSE_DEVICE", tmp_path / "no-fuse")
    monkeypatch.setattr("rehearsal.aws.LocalAws", started_anyway)
    missing = r"no-fuse is missing: bindfs needs FUSE.*--device /dev/fuse"
    with pytest.raises(AccessPointUnavailable, match=missing), Rehearsal("embedded", workdir=tmp_path / "work"):
        pass
