"""A moto server whose API calls the rehearsal can hold (fault drills) and authorise (IAM).

A drill such as "kill the Celery worker while a task is running" needs the task to be running when
the kill lands. Emulated calls answer in milliseconds, so polling for a running task races against
its end (on a slow CI machine it lost every time). Holding the task's own AWS call at the emulator
makes the window as long as the drill needs and tells the drill exactly when it has opened.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from rehearsal.aws.iam_gate import IamGate, denial_response, parse_call

# A forgotten hold must not wedge a whole run: past this, held calls go through anyway.
MAX_HOLD_SECONDS = 300.0


class HeldCall:
    """Calls to one operation, held at the emulator until `release()` (or the context's end)."""

    def __init__(self, operation: str):
        self.operation = operation
        self._arrived = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._count = 0

    @property
    def count(self) -> int:
        """How many calls to the operation have reached the emulator while held."""
        with self._lock:
            return self._count

    def wait_arrived(self, timeout: float) -> bool:
        """True once a call to the operation is being held; False after `timeout` seconds."""
        return self._arrived.wait(timeout)

    def release(self) -> None:
        self._released.set()

    def _hold(self) -> None:
        with self._lock:
            self._count += 1
        self._arrived.set()
        self._released.wait(MAX_HOLD_SECONDS)


def _operation(environ: dict[str, Any]) -> str:
    """`ElasticMapReduce.TerminateJobFlows` -> `TerminateJobFlows` (JSON-protocol services)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return target.rpartition(".")[2]


class GatedMotoServer:
    """moto's server app on loopback in a thread, with `hold(operation)` and an optional IAM gate in front."""

    def __init__(self, port: int = 0):
        self._port = port
        self._holds: dict[str, HeldCall] = {}
        self._holds_lock = threading.Lock()
        self._backend = DomainDispatcherApplication(create_backend_app)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        # Set once the principals are known; until then (seeding) every call is the rehearsal's own.
        self.iam: IamGate | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        gate = self.iam
        if gate is not None and not environ.get("PATH_INFO", "").startswith("/moto-api/"):
            call = parse_call(environ)
            denial = gate.check(call)
            if denial is not None:
                status, headers, body = denial_response(call, denial)
                start_response(
                    f"{status} {'Forbidden' if status == 403 else 'Bad Request'}",
                    [*headers.items(), ("Content-Length", str(len(body)))],
                )
                return [body]
        with self._holds_lock:
            held = self._holds.get(_operation(environ))
        if held is not None:
            held._hold()
        return self._backend(environ, start_response)

    @contextlib.contextmanager
    def hold(self, operation: str) -> Iterator[HeldCall]:
        """Hold every call to `operation` (e.g. `TerminateJobFlows`) until released or the block ends."""
        held = HeldCall(operation)
        with self._holds_lock:
            if operation in self._holds:
                raise RuntimeError(f"rehearsal: {operation} is already held")
            self._holds[operation] = held
        try:
            yield held
        finally:
            with self._holds_lock:
                del self._holds[operation]
            held.release()

    def start(self) -> None:
        self._server = make_server("127.0.0.1", self._port, self, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        with self._holds_lock:
            holds = list(self._holds.values())
        for held in holds:
            held.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
