"""What one api-server worker pays before it answers its first Execution API request.

Each uvicorn worker of `airflow api-server` builds the Execution API's versioned routes (Cadwyn's
`_cadwyn_initialize`) lazily, on the first request that reaches `/execution/`, on the worker's event
loop: until it is done that worker answers nothing, core API requests included. The api-server's own
health check (`/api/v2/monitor/health`) does not reach `/execution/`, so every worker is still cold when
the node passes its gate. This measures that cost in a fresh process per repeat: CPU seconds are what a
dedicated core would take, wall seconds what this machine's load made of them, and the peak RSS of a
process that created the whole api-server app (the per-worker memory for sizing `api_server_workers`).

    .venv/bin/python bench/api_worker_cold_start.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

_ONE_WORKER = """
import json, resource, time
wall, cpu = time.perf_counter(), time.process_time()
from airflow.api_fastapi.app import create_app
create_app()
from airflow.api_fastapi.execution_api.app import create_task_execution_api_app
app = create_task_execution_api_app()
created = (time.perf_counter() - wall, time.process_time() - cpu)
wall, cpu = time.perf_counter(), time.process_time()
app._cadwyn_initialize()
print(json.dumps({
    "create_wall": created[0], "create_cpu": created[1],
    "routes_wall": time.perf_counter() - wall, "routes_cpu": time.process_time() - cpu,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def one_worker() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", _ONE_WORKER], env=env, capture_output=True, text=True, check=True
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    runs = [one_worker() for _ in range(parser.parse_args().repeat)]
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for key in runs[0]:
        values = [run[key] for run in runs]
        print(f"{key:12} median {statistics.median(values):7.2f}  max {max(values):7.2f}")


if __name__ == "__main__":
    main()
