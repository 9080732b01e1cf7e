"""The metadata DB's connections in the cluster rehearsal, against the stack's own rules.

``rehearsal_budget`` is what stacks/connection_budget.py allows the rehearsal's nodes: the same model
the synthesis checks, applied to the node.env the rehearsal renders (its scheduler count, api-server
workers, worker concurrency), not to the stack's dev values. ``stack_max_connections`` is RDS's default
max_connections for the instance class of the synthesized template, so the rehearsal's MariaDB refuses
a connection where RDS would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rehearsal.aws.stack_template import synthesized_stack
from stacks.connection_budget import NodeBudget, max_connections, node_budget


@dataclass(frozen=True)
class ConnectionBudget:
    nodes: tuple[tuple[str, NodeBudget], ...]

    @property
    def total(self) -> int:
        return sum(budget.total for _, budget in self.nodes)

    def detail(self) -> str:
        return "; ".join(
            f"{name} {budget.total} ({', '.join(f'{p} {n}' for p, n in budget.per_process.items())})"
            for name, budget in self.nodes
        )


def rehearsal_budget(nodes: Iterable) -> ConnectionBudget:
    """`nodes`: rehearsal.nodes.RehearsalHost objects (name, params = their node.env)."""
    return ConnectionBudget(tuple((node.name, node_budget(node.params)) for node in nodes))


def stack_instance_class() -> str:
    """The metadata DB's instance class in the synthesized template, without the db. prefix (e.g. t4g.micro)."""
    template = synthesized_stack().template
    classes = [
        resource["Properties"]["DBInstanceClass"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::RDS::DBInstance"
    ]
    if len(classes) != 1:
        raise ValueError(f"the synthesized template has {len(classes)} RDS DB instances, expected 1")
    return classes[0].removeprefix("db.")


def stack_max_connections() -> int:
    return max_connections(stack_instance_class())
