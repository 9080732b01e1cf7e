"""The stack's node.env and commands, read by the node bootstrap of airflow_assets/ (contracts §4)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from .infra_support import REPO_ROOT, VARIANTS, node_env, parse_env

BOOTSTRAP = REPO_ROOT / "airflow_assets" / "bootstrap"


def bootstrap_node_module():
    if not (BOOTSTRAP / "node.py").exists():
        pytest.skip("airflow_assets/bootstrap/node.py is not there")
    if str(BOOTSTRAP) not in sys.path:
        sys.path.insert(0, str(BOOTSTRAP))  # as when node.py runs as a script: its sibling modules import
    spec = importlib.util.spec_from_file_location("bootstrap_node", BOOTSTRAP / "node.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def instances(assembly):
    return {k: v for k, v in assembly.resources("AWS::EC2::Instance").items()}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_node_runs_an_existing_role_entry_script(assemblies, variant):
    for logical_id, instance in instances(assemblies[variant]).items():
        command = instance["Metadata"]["AWS::CloudFormation::Init"]["bootstrap"]["commands"]["20-bootstrap"]["command"]
        script = command.split()[1].replace("/opt/airflow/assets/", "")
        assert (REPO_ROOT / "airflow_assets" / script).is_file(), f"{logical_id} runs {script}, which airflow_assets/ lacks"
        assert command.endswith(" all")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bootstrap_accepts_the_node_env_the_stack_writes(assemblies, variant, tmp_path):
    node = bootstrap_node_module()
    for logical_id in instances(assemblies[variant]):
        text = node_env(assemblies[variant].template, logical_id)
        path = tmp_path / f"{logical_id}.env"
        path.write_text(text)
        parsed = node.read_node_env(path)
        written = parse_env(text)
        for key, value in written.items():
            assert parsed[key] == value, key
        assert json.loads(parsed["EMR_PIPELINE_JSON"])["hive_database"] == "mall"
