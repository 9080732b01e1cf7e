"""Load for the cluster rehearsal's connection-budget test: many short tasks at once.

Each task makes the calls a task makes through the api-server's Execution API (a Variable lookup,
its XCom; the fan-in pulls them all), so the api-server's and the scheduler's pools are busy while
the worker runs as many tasks as it has slots. The test copies this file into the rehearsal's DAG
folder; it is not a deployed DAG.
"""

from __future__ import annotations

import time
from datetime import datetime

from airflow.sdk import DAG, Variable, task

# Twice the rehearsal worker's slots (WORKER_CONCURRENCY=4): the worker stays full while the run lasts.
FAN_OUT = 8

with DAG(
    "connection_load",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_tasks=FAN_OUT,
    tags=["rehearsal-test"],
):

    @task(retries=0)
    def hold(index: int) -> int:
        Variable.get("connection_load_absent", default=None)
        time.sleep(1)
        return index

    @task(retries=0)
    def gather(values: list[int]) -> int:
        if sorted(values) != list(range(FAN_OUT)):
            raise ValueError(f"expected the XComs of {FAN_OUT} tasks, got {values}")
        return len(values)

    gather(hold.expand(index=list(range(FAN_OUT))))
