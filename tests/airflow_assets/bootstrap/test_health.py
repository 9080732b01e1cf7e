"""The api-server node's health gate asks both of its APIs: the REST API and the Execution API the tasks call."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

REST_HEALTH = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}


def _stand_in_api_server(routes: dict[str, tuple[int, dict]]):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            status, body = routes.get(self.path, (404, {"detail": "Not Found"}))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize(
    ("execution", "expected"),
    [
        (None, "/execution/health answered HTTP 404"),  # the Execution API is not mounted
        ((503, {"detail": "starting"}), "/execution/health answered HTTP 503"),
        ((200, {"status": "degraded"}), "the execution API is degraded"),
    ],
)
def test_an_api_server_whose_execution_api_does_not_answer_is_unhealthy(node_module, execution, expected):
    routes = {"/api/v2/monitor/health": (200, REST_HEALTH)}
    if execution:
        routes["/execution/health"] = execution
    server = _stand_in_api_server(routes)
    try:
        checks = node_module.HealthChecks(SimpleNamespace(env={"API_SERVER_PORT": str(server.server_port)}))
        problem = checks.api_server()
    finally:
        server.shutdown()
    assert problem is not None and expected in problem, problem


def test_an_api_server_with_both_apis_healthy_passes(node_module):
    server = _stand_in_api_server(
        {"/api/v2/monitor/health": (200, REST_HEALTH), "/execution/health": (200, {"status": "healthy"})}
    )
    try:
        checks = node_module.HealthChecks(SimpleNamespace(env={"API_SERVER_PORT": str(server.server_port)}))
        assert checks.api_server() is None
    finally:
        server.shutdown()
