"""The metadata-DB connection budget: what the nodes' rendered configuration can open against RDS's.
max_connections ({DBInstanceClassMemory/12582880} in the default MySQL parameter group)."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError
from stacks.connection_budget import check_connection_budget, max_connections

from .infra_support import node_env, parse_env, synthesize


def node_envs(assembly) -> list[dict[str, str]]:
    """Each instance's node.env as the synthesized template writes it (tokens shown as <Ref>)."""
    template = assembly.template
    instances = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::EC2::Instance"]
    return [parse_env(node_env(template, logical_id)) for logical_id in instances]


def test_a_small_database_with_many_api_server_workers_fails_synthesis(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"connection budget exceeded: the Airflow nodes can open \d+ metadata-DB connections, but db.t4g.micro allows \d+",
    ):
        synthesize(tmp_path, {"db_instance_type": "t4g.micro", "api_server_workers": 8})


@pytest.mark.parametrize("variant", ["dev", "prod", "local_executor"])
def test_every_variant_fits_its_database(assemblies, variant):
    # The variants synthesized, so the stack's own check passed; the budget must also hold on recount.
    envs = node_envs(assemblies[variant])
    (db,) = assemblies[variant].resources("AWS::RDS::DBInstance").values()
    instance_class = db["Properties"]["DBInstanceClass"].removeprefix("db.")
    budgets = check_connection_budget(instance_class, envs)
    assert 0 < sum(b.total for b in budgets) <= max_connections(instance_class)


def test_the_budget_follows_the_rendered_worker_count_and_the_instance_class(dev):
    envs = node_envs(dev)
    many_workers = [{**env, "API_SERVER_WORKERS": "8"} if env["AIRFLOW_ROLE"] == "api-server" else env for env in envs]
    with pytest.raises(ConfigError, match="api-server node"):
        check_connection_budget("t4g.micro", many_workers)
    check_connection_budget("t4g.large", many_workers)
    before = sum(b.total for b in check_connection_budget("t4g.large", envs))
    after = sum(b.total for b in check_connection_budget("t4g.large", many_workers))
    assert after > before


def test_max_connections_follows_rds_formula_and_unknown_classes_are_named():
    # db.t4g.micro has 1 GiB: 1073741824 / 12582880.
    assert max_connections("t4g.micro") == 85
    assert max_connections("r6g.large") == 16 * 1024**3 // 12582880
    with pytest.raises(ConfigError, match="'db_instance_type': no connection budget is known for 'x9.huge'"):
        max_connections("x9.huge")


def test_the_worker_node_opens_no_metadata_db_connection(dev):
    # Its airflow.env has no DB URL (tasks use the Execution API, results go to Redis), so none count.
    (worker,) = [env for env in node_envs(dev) if env["AIRFLOW_ROLE"] == "worker"]
    (budget,) = check_connection_budget("t4g.micro", [worker])
    assert budget.total == 0 and set(budget.per_process) == {"celery-worker", "flower"}
