"""The nodes start in the order of the synthesized template's dependency graph, and each node's health.
gate passes while the nodes created after it do not exist yet (CloudFormation creates an instance only
after everything it depends on is complete, an instance with a CreationPolicy only once it signalled)."""

from __future__ import annotations

import sys
import urllib.request

import boto3
import pytest

from rehearsal.aws.api_gate import GatedMotoServer
from rehearsal.aws.seed import _create_secrets
from rehearsal.aws.stack_template import created_before, template_nodes
from rehearsal.nodes import FAST_SCHEDULING, RehearsalHost, free_port
from rehearsal.supervisor import Supervisor
from stacks.config import REPO_ROOT
from stacks.start_order import STARTS_AFTER, start_waves

from .infra_support import VARIANTS, node_env, parse_env


def node_roles(template: dict) -> dict[str, str]:
    """instance logical id -> the Airflow role its node.env names."""
    return {
        logical_id: parse_env(node_env(template, logical_id))["AIRFLOW_ROLE"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::EC2::Instance"
    }


def template_starts_after(template: dict) -> dict[str, set[str]]:
    roles = node_roles(template)
    before = created_before(template)
    return {role: {roles[d] for d in before[logical_id] if d in roles} for logical_id, role in roles.items()}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_template_creates_the_nodes_in_the_declared_start_order(assemblies, variant):
    template = assemblies[variant].template
    graph = template_starts_after(template)
    assert graph == {role: set(STARTS_AFTER[role]) for role in graph}
    assert start_waves(graph)[0] == ["scheduler"]
    # The api-server's DNS name exists only once the api-server instance does (the record holds its IP).
    roles = node_roles(template)
    before = created_before(template)
    records = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::Route53::RecordSet"]
    assert records
    for record in records:
        assert "api-server" in {roles[d] for d in before[record] if d in roles}


@pytest.fixture
def secrets_emulator():
    server = GatedMotoServer()
    server.start()
    # moto's backends are process-wide: start from nothing, as LocalAws does, whatever ran before.
    urllib.request.urlopen(
        urllib.request.Request(f"{server.endpoint_url}/moto-api/reset", method="POST"), timeout=30
    ).close()
    client = boto3.client(
        "secretsmanager",
        region_name="us-west-2",
        endpoint_url=server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        yield server.endpoint_url, _create_secrets(client)
    finally:
        server.stop()


@pytest.mark.rehearsal
def test_first_wave_nodes_pass_their_health_gate_before_later_nodes_exist(dev, tmp_path, secrets_emulator):
    """Real Airflow processes of each node the template creates first, and nothing else: no api-server,
    no DNS record for it (its name does not resolve here, as on EC2 before the record exists)."""
    endpoint_url, secret_ids = secrets_emulator
    template = dev.template
    first_wave = start_waves(template_starts_after(template))[0]
    supervisor = Supervisor(tmp_path / "logs")
    try:
        for logical_id, role in node_roles(template).items():
            if role not in first_wave:
                continue
            written = parse_env(node_env(template, logical_id))
            root = tmp_path / role
            # The template's node.env, made runnable on this machine: local paths, the emulator's secrets,
            # SQLite and LocalExecutor instead of RDS and Redis. API_SERVER_HOST stays the template's name.
            params = {
                **{k: v for k, v in written.items() if not k.endswith("_SECRET_ID")},
                **secret_ids,
                **FAST_SCHEDULING,
                "AIRFLOW_HOME": str(root / "airflow"),
                "AIRFLOW_VENV": sys.prefix,
                "AIRFLOW_USER": "",
                "AIRFLOW_REQUIREMENTS": "",
                "PROCESS_MANAGER": "external",
                "DAGS_FOLDER": str(tmp_path / "efs" / "dags"),
                "DAGS_SOURCE_DIR": str(REPO_ROOT / "airflow_assets" / "dags"),
                "DB_KIND": "sqlite",
                "EXECUTOR": "LocalExecutor",
                "DB_CA_BUNDLE": "",
                "AWS_ENDPOINT_URL": endpoint_url,
                "SCHEDULER_HEALTH_PORT": str(free_port()),
                "TRIGGERER_LOG_SERVER_PORT": str(free_port()),
                "WORKER_LOG_SERVER_PORT": str(free_port()),
                "HEALTH_TIMEOUT_SECONDS": "180",
            }
            assert params["API_SERVER_HOST"] == written["API_SERVER_HOST"]
            # Bootstrapped with the template's cfn-init env map; sqlite is a shape the template does not have.
            node = RehearsalHost(role, root, params, template_nodes(template)[role])
            node.write_node_env()
            for phase in ("configure", "start"):
                node.phase(phase)
            for unit in node.unit_files():
                supervisor.start(role, unit)
            node.phase("health")  # raises BootstrapError with the log tail when the gate fails
    finally:
        supervisor.stop_all()
