"""Who may use the deployed api-server: the FAB auth manager, with the admin password from Secrets Manager."""

import time

import httpx

from rehearsal.services import port_open
from rehearsal.supervisor import Supervisor

from .conftest import free_port


def test_api_refuses_anonymous_requests_and_admin_logs_in_with_the_secret(bootstrap, node_secrets, tmp_path):
    port = free_port()
    bootstrap.params.update(
        node_secrets.params,
        AIRFLOW_ROLE="scheduler",
        COLOCATED_ROLES="api-server",
        EXECUTOR="LocalExecutor",
        API_SERVER_HOST="127.0.0.1",
        API_SERVER_BIND="127.0.0.1",
        API_SERVER_PORT=str(port),
        API_SERVER_WORKERS="1",
    )
    for phase in ("configure", "start"):  # start: this node migrates the metadata DB (FAB tables included)
        result = bootstrap.run(phase)
        assert result.returncode == 0, result.stderr[-3000:]
    supervisor = Supervisor(tmp_path / "logs")
    try:
        key = supervisor.start("node", bootstrap.home / "units" / "airflow-api-server.service")
        deadline = time.monotonic() + 240
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            assert supervisor.pid(key) is not None, supervisor.log_path(key).read_text()[-3000:]
            time.sleep(1)
        log = supervisor.log_path(key).read_text()
        assert port_open("127.0.0.1", port), log[-3000:]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            assert api.get("/api/v2/dags").status_code == 401
            assert api.post("/auth/token", json={"username": "admin", "password": "not-the-secret"}).status_code == 401
            login = api.post(
                "/auth/token", json={"username": "admin", "password": node_secrets.values["ADMIN_PASSWORD_SECRET_ID"]}
            )
            assert login.status_code in (200, 201), login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert api.get("/api/v2/dags", headers=headers).status_code == 200
            # A user of the FAB user store, with FAB's Admin role (SimpleAuthManager has neither).
            user = api.get("/auth/fab/v1/users/admin", headers=headers)
            assert user.status_code == 200 and user.headers.get("content-type", "").startswith("application/json"), (
                f"no FAB user admin: HTTP {user.status_code} {user.headers.get('content-type')}: {user.text[:200]}"
            )
            assert [role["name"] for role in user.json()["roles"]] == ["Admin"]
    finally:
        supervisor.stop_all()
