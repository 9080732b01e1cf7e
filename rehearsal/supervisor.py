"""Runs rendered systemd unit files as local process groups, the way systemd runs them on EC2.

Only the unit keys the bootstrap renders are honoured: EnvironmentFile, WorkingDirectory,
ExecStartPre, ExecStart, Restart=on-failure, RestartSec, KillMode (control-group, mixed) and
TimeoutStopSec. Keeping to the same files means the rehearsal exercises exactly the commands the EC2
nodes run, and stops them the way systemd does.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

# systemd starts services with a clean environment; pass on only what a login shell would have.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "JAVA_HOME", "TZ")
KILL_MODES = ("control-group", "mixed")
# systemd's DefaultTimeoutStopSec.
DEFAULT_TIMEOUT_STOP_SEC = 90.0


@dataclass(frozen=True)
class Unit:
    name: str
    exec_start: list[str]
    exec_start_pre: list[list[str]]
    environment_file: Path | None
    working_directory: Path | None
    restart_on_failure: bool
    restart_sec: float
    kill_mode: str = "control-group"
    timeout_stop_sec: float = DEFAULT_TIMEOUT_STOP_SEC

    @classmethod
    def parse(cls, path: Path) -> Unit:
        values: dict[str, list[str]] = {}
        section = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service":
                key, _, value = line.partition("=")
                values.setdefault(key.strip(), []).append(value.strip())
        if "ExecStart" not in values:
            raise ValueError(f"{path} has no ExecStart")
        kill_mode = values.get("KillMode", ["control-group"])[-1]
        if kill_mode not in KILL_MODES:
            raise ValueError(f"{path}: KillMode={kill_mode} is not emulated (only {', '.join(KILL_MODES)})")
        env_file = values.get("EnvironmentFile", [""])[-1]
        workdir = values.get("WorkingDirectory", [""])[-1]
        return cls(
            name=path.name.removesuffix(".service"),
            exec_start=shlex.split(values["ExecStart"][-1]),
            exec_start_pre=[shlex.split(v) for v in values.get("ExecStartPre", [])],
            environment_file=Path(env_file) if env_file else None,
            working_directory=Path(workdir) if workdir else None,
            restart_on_failure=values.get("Restart", ["no"])[-1] in {"on-failure", "always"},
            restart_sec=float(values.get("RestartSec", ["0"])[-1]),
            kill_mode=kill_mode,
            timeout_stop_sec=float(values.get("TimeoutStopSec", [str(DEFAULT_TIMEOUT_STOP_SEC)])[-1]),
        )

    def environment(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        if self.environment_file:
            env.update({k: v or "" for k, v in dotenv_values(self.environment_file).items()})
        return env


class UnitStartError(RuntimeError):
    pass


class _Service:
    def __init__(self, key: str, unit: Unit, log_path: Path, command_prefix: tuple[str, ...] = ()):
        self.key = key
        self.unit = unit
        self.log_path = log_path
        # Put in front of ExecStartPre and ExecStart; it must exec the command (the main pid stays the unit's).
        self.command_prefix = command_prefix
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.exited_at: float | None = None
        self.held = False

    def spawn(self) -> None:
        env = self.unit.environment()
        cwd = self.unit.working_directory
        with self.log_path.open("ab") as log:
            for command in self.unit.exec_start_pre:
                result = subprocess.run(
                    [*self.command_prefix, *command],
                    env=env,
                    cwd=cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
                if result.returncode:
                    raise UnitStartError(
                        f"{self.key}: ExecStartPre {command[0]} exited {result.returncode}, see {self.log_path}"
                    )
            self.process = subprocess.Popen(
                [*self.command_prefix, *self.unit.exec_start],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.exited_at = None


class Supervisor:
    """Starts units, restarts them on failure like systemd, and stops every process group it started."""

    def __init__(self, log_dir: Path, poll_interval: float = 0.5):
        self.log_dir = log_dir
        self.poll_interval = poll_interval
        self._services: dict[str, _Service] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._monitor.start()

    def start(self, node: str, unit_file: Path, command_prefix: tuple[str, ...] = ()) -> str:
        """Start a unit of `node`; `command_prefix` (which must exec its arguments) runs each of its commands
        in the node's view of the machine, e.g. its own /etc/hosts (rehearsal/private_zone.py)."""
        unit = Unit.parse(unit_file)
        key = f"{node}/{unit.name}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service = _Service(key, unit, self.log_dir / f"{node}.{unit.name}.log", command_prefix)
        with self._lock:
            if key in self._services:
                raise UnitStartError(f"{key} is already running")
            service.spawn()
            self._services[key] = service
        return key

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._services)

    def pid(self, key: str) -> int | None:
        with self._lock:
            process = self._services[key].process
            return process.pid if process and process.poll() is None else None

    def restarts(self, key: str) -> int:
        with self._lock:
            return self._services[key].restarts

    def log_path(self, key: str) -> Path:
        return self._services[key].log_path

    def kill(self, key: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole process group, as a crash or the OOM killer would hit it."""
        with self._lock:
            process = self._services[key].process
        if process and process.poll() is None:
            os.killpg(process.pid, sig)

    def hold(self, key: str, held: bool = True) -> None:
        """Keep a crashed unit down (held) or let the restart policy bring it back (released)."""
        with self._lock:
            self._services[key].held = held

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            with self._lock:
                for service in self._services.values():
                    process = service.process
                    if process is None or process.poll() is None:
                        continue
                    if not service.unit.restart_on_failure or process.returncode == 0 or service.held:
                        continue
                    now = time.monotonic()
                    if service.exited_at is None:
                        service.exited_at = now
                    if now - service.exited_at >= service.unit.restart_sec and not self._stopping.is_set():
                        service.restarts += 1
                        try:
                            service.spawn()
                        except (UnitStartError, OSError):
                            service.exited_at = now

    def stop(self, key: str, timeout_cap: float | None = None) -> None:
        """`systemctl stop`: stop the unit as its KillMode says and keep it down (no restart).

        control-group: SIGTERM to every process of the unit; mixed: SIGTERM to the main process only.
        Then up to TimeoutStopSec (at most `timeout_cap`) for the main process (control-group: the whole
        group) to exit, and SIGKILL to whatever of the unit is left.
        """
        with self._lock:
            service = self._services[key]
            service.held = True
            process = service.process
        if process is None or process.poll() is not None:
            return
        _stop_process(process, service.unit, timeout_cap)

    def stop_all(self, timeout: float = 30.0) -> None:
        """Stop every unit as `stop` does, together, waiting at most `timeout` seconds for any of them."""
        self._stopping.set()
        with self._lock:
            services = list(self._services.values())
        threads = [threading.Thread(target=self.stop, args=(s.key, timeout), name=f"stop-{s.key}") for s in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _stop_process(process: subprocess.Popen, unit: Unit, timeout_cap: float | None) -> None:
    deadline = time.monotonic() + min(
        unit.timeout_stop_sec, timeout_cap if timeout_cap is not None else unit.timeout_stop_sec
    )
    if unit.kill_mode == "mixed":
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    else:
        _signal_group(process, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=max(0.1, deadline - time.monotonic()))
    if unit.kill_mode == "control-group":
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    # The group may hold children (gunicorn/uvicorn workers, task runners) that outlive the leader.
    _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
