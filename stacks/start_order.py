"""Which Airflow node starts after which (plain Python, no CDK: the rehearsal imports it too).

The stack turns this into the instances' DependsOn, so CloudFormation creates a node only after the
nodes it starts after have passed their health gate and signalled. Hence a node's gate may check only
itself and those nodes (the bootstrap's HealthChecks check local processes only). The scheduler node
comes first because it migrates the metadata database that the other nodes wait for.
"""

from __future__ import annotations

from collections.abc import Iterable

STARTS_AFTER: dict[str, tuple[str, ...]] = {
    "scheduler": (),
    "api-server": ("scheduler",),
    "worker": ("scheduler",),
}


def start_waves(roles: Iterable[str]) -> list[list[str]]:
    """`roles` grouped into waves: each wave starts once every earlier wave is healthy; a wave's nodes start together."""
    pending = list(dict.fromkeys(roles))
    unknown = [role for role in pending if role not in STARTS_AFTER]
    if unknown:
        raise ValueError(f"no start order for role(s) {', '.join(unknown)}; expected {', '.join(STARTS_AFTER)}")
    started: set[str] = set()
    waves = []
    while pending:
        # A role this deployment lacks (no worker under LocalExecutor) holds nobody back.
        wave = [
            role for role in pending if all(before in started or before not in pending for before in STARTS_AFTER[role])
        ]
        waves.append(wave)
        started.update(wave)
        pending = [role for role in pending if role not in wave]
    return waves
