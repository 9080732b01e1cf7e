"""The api-server's DNS name resolves for the nodes only once CloudFormation would have created its record.

Real processes in their own mount namespace (as the cluster rehearsal starts every node process) and the
rehearsal's own boot, with stand-in bootstrap scripts and units instead of Airflow: seconds, no cluster.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rehearsal.aws.stack_template import synthesized_stack, template_nodes
from rehearsal.nodes import RehearsalHost
from rehearsal.private_zone import MissingRecord, PrivateZone, ZoneRecord, check_node_hosts, zone_records
from rehearsal.run import Rehearsal, RehearsalFailed
from rehearsal.supervisor import Supervisor
from stacks.start_order import STARTS_AFTER

NAME = "api-server.airflow.internal"
# One lookup of the name per line read from stdin (or, with an interval argument, forever), one outcome per line.
RESOLVER = f"""
import socket, sys, time
def lookup():
    try:
        return socket.getaddrinfo({NAME!r}, 8080, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError as error:
        return str(error)
if len(sys.argv) > 1:
    while True:
        print(lookup(), flush=True)
        time.sleep(float(sys.argv[1]))
for _ in sys.stdin:
    print(lookup(), flush=True)
"""
NXDOMAIN = "Name or service not known"


@pytest.fixture(scope="module")
def record() -> ZoneRecord:
    (found,) = zone_records(synthesized_stack().template)
    return found


def test_the_template_names_the_api_server_record_and_the_other_nodes_use_that_name(record, cluster_hosts):
    assert record.name == NAME
    # Its ResourceRecords are the api-server instance's PrivateIp (which starts after the scheduler).
    assert record.created_after == {"scheduler", "api-server"}
    template = {
        role: node.node_env["API_SERVER_HOST"] for role, node in template_nodes(synthesized_stack().template).items()
    }
    assert template == {"scheduler": NAME, "worker": NAME, "api-server": "127.0.0.1"}
    # The rehearsal's nodes get the template's value, not loopback in its place.
    assert {node.role: node.params["API_SERVER_HOST"] for node in cluster_hosts} == template


def test_every_name_the_template_hands_a_node_has_its_record():
    template = synthesized_stack().template
    check_node_hosts(template, zone_records(template))


def test_a_record_named_apart_from_the_nodes_api_server_host_stops_the_rehearsal(record):
    template = copy.deepcopy(synthesized_stack().template)
    template["Resources"][record.logical_id]["Properties"]["Name"] = "api.airflow.internal."
    with pytest.raises(MissingRecord, match=f"API_SERVER_HOST={NAME}, but the template has no A record of that name"):
        PrivateZone.of_template(Path("unused"), template)


def test_a_running_node_process_resolves_the_name_only_once_its_record_is_created(record, tmp_path):
    zone = PrivateZone(tmp_path / "hosts", [record]).start()
    process = subprocess.Popen(
        zone.command([sys.executable, "-c", RESOLVER]), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )

    def lookup() -> str:
        process.stdin.write("\n")
        process.stdin.flush()
        return process.stdout.readline().strip()

    try:
        assert NXDOMAIN in lookup()
        assert zone.signalled("scheduler") == []  # the record also waits for the api-server
        assert NXDOMAIN in lookup()
        assert zone.signalled("api-server") == [record]
        # The same process, already running (where the nss_wrapper attempt failed): glibc rereads /etc/hosts.
        assert lookup() == "127.0.0.1"
    finally:
        process.stdin.close()
        process.wait(timeout=30)
    # Only the node processes' view has it: the machine's /etc/hosts stays as it was.
    assert NAME not in Path("/etc/hosts").read_text()
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(NAME, 8080)


@dataclasses.dataclass
class StandInHost(RehearsalHost):
    """A rehearsal node whose units are given (the bootstrap scripts are stand-ins through bootstrap_dir)."""

    units: tuple[Path, ...] = ()

    def unit_files(self) -> list[Path]:
        return list(self.units)


def _stand_in_nodes(
    tmp_path: Path, hosts: list[RehearsalHost], *, worker_health: str, api_server_health: str
) -> list[StandInHost]:
    """The three cluster nodes with stand-in health gates; the worker runs a unit that looks the name up every 0.1 s."""
    scripts = tmp_path / "bootstrap"
    scripts.mkdir()
    (scripts / "resolver.py").write_text(RESOLVER)
    resolve = f"{sys.executable} -c 'import socket; socket.getaddrinfo(\"{NAME}\", 8080)'"
    health = {"scheduler": "true", "api-server": api_server_health, "worker": worker_health.format(resolve=resolve)}
    for role, check in health.items():
        (scripts / f"{role}.sh").write_text(f'case "$1" in health) {check} ;; esac\n')
    unit = tmp_path / "lookups.service"
    unit.write_text(f"[Service]\nExecStart={sys.executable} {scripts / 'resolver.py'} 0.1\n")
    return [
        StandInHost(
            **{f.name: getattr(node, f.name) for f in dataclasses.fields(node)} | {"bootstrap_dir": scripts},
            units=(unit,) if node.role == "worker" else (),
        )
        for node in hosts
    ]


@contextlib.contextmanager
def booted(tmp_path: Path, record: ZoneRecord, nodes: list[StandInHost]):
    """The rehearsal's boot (cfn order, health gates, the private zone) of the stand-in nodes."""
    rehearsal = Rehearsal("cluster", workdir=tmp_path / "rehearsal")
    rehearsal.private_zone = PrivateZone(tmp_path / "hosts", [record]).start()
    for node in nodes:
        node.command_prefix = rehearsal.private_zone.command_prefix
    rehearsal.nodes = nodes
    rehearsal.supervisor = Supervisor(tmp_path / "logs", poll_interval=0.1)
    try:
        rehearsal.boot_nodes()
        yield rehearsal
    finally:
        rehearsal.supervisor.stop_all(timeout=5)


def test_a_node_resolving_the_name_before_its_record_exists_fails_the_boot_naming_the_record(
    record, cluster_hosts, tmp_path, monkeypatch
):
    """A start order in which the worker starts with the scheduler, before the api-server signalled: its gate
    needs the name, which the VPC resolver does not know yet (NXDOMAIN), so the rehearsal fails as AWS would."""
    monkeypatch.setitem(STARTS_AFTER, "worker", ())
    nodes = _stand_in_nodes(tmp_path, cluster_hosts, worker_health="{resolve}", api_server_health="true")
    with pytest.raises(RehearsalFailed) as failure, booted(tmp_path, record, nodes):
        pass
    message = str(failure.value)
    assert f"{NAME} does not resolve yet (NXDOMAIN" in message
    assert f"AWS::Route53::RecordSet {record.logical_id}" in message
    assert NXDOMAIN in message  # the worker's own error, from its bootstrap log


def test_in_the_templates_order_a_running_node_resolves_the_name_once_the_api_server_signalled(
    record, cluster_hosts, tmp_path
):
    """The real start order: the worker starts beside the api-server, before the record exists; its running
    unit finds the name as soon as the api-server passed its gate, without a restart."""
    # The api-server's gate passes only once the worker's unit has looked the name up (before the record).
    first_lookup = tmp_path / "logs" / "worker.lookups.log"
    nodes = _stand_in_nodes(
        tmp_path,
        cluster_hosts,
        worker_health="true",
        api_server_health=f"for _ in $(seq 600); do [ -s {first_lookup} ] && break; sleep 0.1; done",
    )
    with booted(tmp_path, record, nodes) as rehearsal:
        assert rehearsal.private_zone.missing() == []
        log = rehearsal.supervisor.log_path("worker/lookups")
        assert log == first_lookup
        deadline = time.monotonic() + 30
        while "127.0.0.1" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a few lookups more: the name stays
        outcomes = log.read_text().splitlines()
    assert NXDOMAIN in outcomes[0], outcomes  # looked up while the api-server's gate still ran
    assert "127.0.0.1" in outcomes, outcomes
    assert set(outcomes[outcomes.index("127.0.0.1") :]) == {"127.0.0.1"}, outcomes
