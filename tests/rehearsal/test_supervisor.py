import signal
import sys
import time
from pathlib import Path

from rehearsal.supervisor import Supervisor, Unit


def _unit(tmp_path: Path, command: str, restart: str = "on-failure") -> Path:
    env = tmp_path / "unit.env"
    env.write_text('GREETING="hello world"\n')
    path = tmp_path / "airflow-test.service"
    path.write_text(f"""[Unit]
Description=test
[Service]
EnvironmentFile={env}
WorkingDirectory={tmp_path}
ExecStartPre={sys.executable} -c "open('pre', 'w').write('ran')"
ExecStart={sys.executable} -c "{command}"
Restart={restart}
RestartSec=0
""")
    return path


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_unit_file_is_parsed_like_systemd(tmp_path):
    unit = Unit.parse(_unit(tmp_path, "print(1)"))
    assert unit.exec_start == [sys.executable, "-c", "print(1)"]
    assert unit.environment()["GREETING"] == "hello world"
    assert unit.restart_on_failure and unit.restart_sec == 0


def test_crashed_unit_is_restarted_and_a_held_one_stays_down(tmp_path):
    supervisor = Supervisor(tmp_path / "logs", poll_interval=0.1)
    try:
        key = supervisor.start(
            "node", _unit(tmp_path, "import os,time; print(os.environ['GREETING'], flush=True); time.sleep(60)")
        )
        assert (tmp_path / "pre").read_text() == "ran"

        def greetings() -> int:
            # Killing before the child printed would prove nothing about its environment or its restart.
            return supervisor.log_path(key).read_text().count("hello world")

        _wait(lambda: greetings() == 1)
        first = supervisor.pid(key)
        supervisor.kill(key, signal.SIGKILL)
        _wait(lambda: supervisor.pid(key) not in (None, first))
        assert supervisor.restarts(key) == 1
        _wait(lambda: greetings() == 2)
        supervisor.hold(key)
        supervisor.kill(key, signal.SIGKILL)
        time.sleep(1)
        assert supervisor.pid(key) is None
    finally:
        supervisor.stop_all(timeout=5)
    assert supervisor.pid(key) is None


def test_clean_exit_is_not_restarted(tmp_path):
    supervisor = Supervisor(tmp_path / "logs", poll_interval=0.1)
    try:
        key = supervisor.start("node", _unit(tmp_path, "pass"))
        time.sleep(1)
        assert supervisor.restarts(key) == 0
    finally:
        supervisor.stop_all(timeout=5)
