"""The Airflow 3 public REST API (/api/v2), as the rehearsal uses it: log in, trigger, watch, read logs."""

from __future__ import annotations

import time
from datetime import datetime

import httpx

FINISHED = {"success", "failed"}


class AirflowApiError(RuntimeError):
    pass


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._client = httpx.Client(base_url=self.base_url, timeout=30.0)

    def close(self) -> None:
        self._client.close()

    def login(self) -> None:
        response = self._client.post("/auth/token", json=self._credentials)
        if response.status_code not in (200, 201):
            raise AirflowApiError(f"login as {self._credentials['username']} failed: HTTP {response.status_code}")
        self._client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self._client.request(method, f"/api/v2{path}", **kwargs)
        if response.status_code == 401:
            self.login()
            response = self._client.request(method, f"/api/v2{path}", **kwargs)
        return response

    def _json(self, method: str, path: str, **kwargs) -> dict:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowApiError(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        """Until the dag-processor has parsed the DAG, without import errors."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._request("GET", f"/dags/{dag_id}").status_code == 200:
                return
            time.sleep(1)
        errors = self._json("GET", "/importErrors").get("import_errors", [])
        detail = "; ".join(f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errors)
        raise AirflowApiError(f"{dag_id} was not parsed within {timeout:.0f}s" + (f" ({detail})" if detail else ""))

    def unpause(self, dag_id: str) -> None:
        self._json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> dict:
        return self._json("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, on_poll=None) -> dict:
        deadline = time.monotonic() + timeout
        state = "unknown"
        while True:
            try:
                run = self.dag_run(dag_id, run_id)
            except httpx.TimeoutException:
                # A busy api-server may leave one poll unanswered; the run goes on, and so does the wait.
                run = None
            if run:
                state = run["state"]
                if state in FINISHED:
                    return run
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{dag_id} run {run_id} still {state} after {timeout:.0f}s")
            if on_poll and run:
                on_poll(run)
            time.sleep(1)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str):
        response = self._request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return response.json().get("value") if response.status_code == 200 else None

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        response = self._request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            return f"(log unavailable: HTTP {response.status_code})"
        lines = []
        for entry in response.json().get("content", []):
            if isinstance(entry, dict):
                lines.append(" ".join(str(entry[k]) for k in ("timestamp", "level", "event") if entry.get(k)))
                lines += [str(entry[k]) for k in ("error_detail", "exception") if entry.get(k)]
            else:
                lines.append(str(entry))
        return "\n".join(lines)
