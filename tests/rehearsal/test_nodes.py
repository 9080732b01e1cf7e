"""The rehearsal's nodes against the synthesized template: node.env's values, cfn-init's environment and
the EFS access point their DAG folder lies on.

These start no rehearsal: the bootstrap entry is a stand-in script, the template the cached synthesis
(or a copy of it with one value changed, as a change to the stack would render it).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import pytest

from airflow_assets.bootstrap import node_env_file
from rehearsal import access_point
from rehearsal.access_point import AccessPointUnavailable
from rehearsal.aws import seed
from rehearsal.aws.stack_template import NODE_ENV_PATH, SynthesizedStack, synthesized_stack
from rehearsal.node_env_template import LOCAL_VALUES, PIPELINE_LOCAL_FIELDS
from rehearsal.nodes import LOCAL_BOOTSTRAP_ENV, BootstrapError, RehearsalHost
from rehearsal.run import Rehearsal
from stacks import s3_layout

from .conftest import stand_in_cluster


def _cluster(tmp_path: Path, aws) -> dict[str, RehearsalHost]:
    return {node.role: node for node in stand_in_cluster(aws, tmp_path)}


@pytest.fixture
def scheduler(cluster_hosts) -> RehearsalHost:
    return next(node for node in cluster_hosts if node.role == "scheduler")


def _written(node: RehearsalHost) -> dict[str, str]:
    node.write_node_env()
    return node_env_file.parse(node.node_env_file.read_text())


def _template_with_node_env(lines: str) -> SynthesizedStack:
    """The synthesized template with `lines` appended to every instance's node.env, as the stack would render them."""
    stack = synthesized_stack()
    template = copy.deepcopy(stack.template)
    for resource in template["Resources"].values():
        files = resource.get("Metadata", {}).get("AWS::CloudFormation::Init", {}).get("files", {}).get("files", {})
        if NODE_ENV_PATH in files:
            files[NODE_ENV_PATH]["content"] = {"Fn::Join": ["", [files[NODE_ENV_PATH]["content"], lines]]}
    return SynthesizedStack(template, stack.stack_name, 0.0)


@pytest.mark.parametrize(
    "template_sets",
    [
        {"WORKER_STOP_TIMEOUT_SECONDS": "1200"},  # a key the rehearsal never wrote
        {"WORKER_CONCURRENCY": "16"},  # a key the rehearsal tunes where the template leaves EC2's default
        {"TASK_HEARTBEAT_TIMEOUT": "120", "DAG_REFRESH_INTERVAL": "60"},
    ],
)
def test_a_tuning_value_the_template_sets_is_the_value_every_node_runs_with(
    tmp_path, monkeypatch, template_sets, seeded_aws
):
    stack = _template_with_node_env("".join(f"{key}={value}\n" for key, value in template_sets.items()))
    monkeypatch.setattr("rehearsal.nodes.synthesized_stack", lambda: stack)
    for role, node in _cluster(tmp_path, seeded_aws).items():
        written = _written(node)
        assert {key: written.get(key) for key in template_sets} == template_sets, role


def test_every_node_runs_the_template_node_env_but_for_the_listed_local_values(tmp_path, seeded_aws):
    """Values the template fixes (DB_NAME, DB_TLS, the uid) are the template's; references
    are the emulated resources' names and ARNs, not the rehearsal's own literals."""
    aws = seeded_aws
    for role, node in _cluster(tmp_path, aws).items():
        written = _written(node)
        template = node.template.node_env
        for key, value in template.items():
            if key not in LOCAL_VALUES and "<" not in value:
                assert written[key] == value, (role, key)
        assert set(written) - set(template) <= set(LOCAL_VALUES), role
        assert written["DB_SECRET_ID"] == aws.secret_ids["DB_SECRET_ID"]
        assert written["REMOTE_LOG_URI"] == f"s3://{seed.LOGS_BUCKET}/{s3_layout.AIRFLOW_LOG_PREFIX}"
        pipeline = json.loads(written["EMR_PIPELINE_JSON"])
        assert {field: pipeline.pop(field) for field in PIPELINE_LOCAL_FIELDS} == seed.pipeline_tuning(1.0), role
        assert pipeline == {**json.loads(template["EMR_PIPELINE_JSON"]), **aws.pipeline_config}, role


def test_a_reference_the_emulator_has_no_resource_for_stops_the_rehearsal(tmp_path, monkeypatch, seeded_aws):
    stack = _template_with_node_env({"Fn::Join": ["", ["EXTRA_BUCKET_HINT=", {"Ref": "NoSuchBucket"}, "\n"]]})
    monkeypatch.setattr("rehearsal.nodes.synthesized_stack", lambda: stack)
    monkeypatch.setattr(node_env_file, "KEYS", node_env_file.KEYS | {"EXTRA_BUCKET_HINT"})
    with pytest.raises(BootstrapError, match="EXTRA_BUCKET_HINT refers to <NoSuchBucket>"):
        _written(_cluster(tmp_path, seeded_aws)["scheduler"])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("DB_SSL_MODE", "off", "DB_SSL_MODE is not in the template's node.env"),
        ("AIRFLOW_REQUIREMENTS", None, "AIRFLOW_REQUIREMENTS is missing"),
        ("DB_NAME", "airflow_rehearsal", "DB_NAME='airflow_rehearsal', the template's is 'airflow'"),
        ("AIRFLOW_UID", "1000", "AIRFLOW_UID='1000', the template's is '50000'"),
        ("DB_TLS", "false", "DB_TLS='false', the template's is 'true'"),
        ("REDIS_AUTH_SECRET_ID", "arn:aws:secretsmanager:us-west-2:1:secret:x", "REDIS_AUTH_SECRET_ID="),
        ("EMR_PIPELINE_JSON", None, "EMR_PIPELINE_JSON field release_label="),
    ],
)
def test_a_node_env_value_the_template_does_not_render_stops_the_rehearsal(scheduler, key, value, expected):
    if key == "EMR_PIPELINE_JSON":
        pipeline = json.loads(scheduler.params[key])
        scheduler.params[key] = json.dumps({**pipeline, "release_label": "emr-6.15.0"})
    elif value is None:
        del scheduler.params[key]
    else:
        scheduler.params[key] = value
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
