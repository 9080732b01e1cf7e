"""The stack's private hosted zone as the nodes see it: a record's name resolves only once CloudFormation
would have created the record.

The template's api-server record (AWS::Route53::RecordSet) takes the api-server instance's PrivateIp, so
CloudFormation creates it only after that instance is CREATE_COMPLETE, i.e. after its CreationPolicy
signal (its health gate); before that the VPC resolver answers NXDOMAIN. Here every process of a node
(bootstrap phases and units) runs in a private mount namespace of its own in which the rehearsal's hosts
file is bind-mounted over /etc/hosts (`unshare --mount`, root or CAP_SYS_ADMIN). The file starts as a copy
of the machine's /etc/hosts, without the zone's names; when the boot reaches a record (every instance it
depends on has passed its health gate) the rehearsal appends the record's line. glibc reads /etc/hosts
on every lookup, so every node process, also one already running, resolves the name from then on, and a
process that asks earlier gets "Name or service not known", as NXDOMAIN looks to getaddrinfo.

The line is appended, never the file replaced: the bind mounts pin its inode.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.aws.stack_template import created_before, instance_roles, template_nodes

MACHINE_HOSTS = Path("/etc/hosts")
# Loopback stands in for every node's private IP: the api-server listens on it (API_SERVER_BIND).
RECORD_ADDRESS = "127.0.0.1"
# What getaddrinfo says for a name that does not exist (EAI_NONAME), and for one it could not look up.
NXDOMAIN_MESSAGES = ("Name or service not known", "Temporary failure in name resolution", "Could not resolve host")
# In the node's namespace: bind the rehearsal's hosts file ($0) over /etc/hosts, then become the command.
_ENTER = '{mount} --bind "$0" /etc/hosts && exec "$@"'


# unshare makes the new namespace's mounts private from / down, which fails where / is no mount point:
# inside a chroot whose directory was not mounted itself.
_CHROOT_HINT = " (in a chroot, make its root a mount point before entering it: mount --rbind DIR DIR; then chroot DIR)"


class PrivateZoneUnavailable(RuntimeError):
    pass


class MissingRecord(RuntimeError):
    pass


@dataclass(frozen=True)
class ZoneRecord:
    logical_id: str
    name: str  # without the final dot
    # The Airflow roles whose instances CloudFormation completes (they signalled) before it creates the record.
    created_after: frozenset[str]

    def describe(self) -> str:
        return (
            f"the template's AWS::Route53::RecordSet {self.logical_id}, which CloudFormation creates only after "
            f"the {', '.join(sorted(self.created_after))} instance(s) signalled"
        )


def zone_records(template: Mapping[str, Any]) -> list[ZoneRecord]:
    """The template's A records and the node instances each waits for."""
    roles = instance_roles(template)
    before = created_before(template)
    records = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Route53::RecordSet" or resource["Properties"].get("Type") != "A":
            continue
        name = resource["Properties"]["Name"]
        if not isinstance(name, str):
            raise ValueError(f"rehearsal: the record {logical_id} has a name the rehearsal cannot render: {name!r}")
        after = frozenset(roles[d] for d in before[logical_id] if d in roles)
        records.append(ZoneRecord(logical_id, name.rstrip("."), after))
    return records


def check_node_hosts(template: Mapping[str, Any], records: Sequence[ZoneRecord]) -> None:
    """Every name the template hands a node as the api-server's host has an A record in the template (an
    address needs none). On AWS a name without one never resolves: a task's first Execution API call fails."""
    names = {record.name for record in records}
    for role, node in template_nodes(template).items():
        host = node.node_env["API_SERVER_HOST"]
        try:
            ipaddress.ip_address(host)
            continue
        except ValueError:
            pass
        if host not in names:
            raise MissingRecord(
                f"the {role} node is given API_SERVER_HOST={host}, but the template has no A record of that name "
                f"(its records: {', '.join(sorted(names)) or 'none'}): on AWS the name never resolves (NXDOMAIN)"
            )


class PrivateZone:
    """The hosts file the nodes resolve through, and the command prefix that puts a process in front of it."""

    def __init__(self, hosts_file: Path, records: Sequence[ZoneRecord], machine_hosts: Path = MACHINE_HOSTS):
        self.hosts_file = hosts_file
        self.records = list(records)
        self.machine_hosts = machine_hosts
        self._healthy: set[str] = set()
        self._lock = threading.Lock()
        # record name -> time.monotonic() when the boot reached it
        self.created: dict[str, float] = {}
        self.command_prefix: tuple[str, ...] = ()

    @classmethod
    def of_template(cls, hosts_file: Path, template: Mapping[str, Any]) -> PrivateZone:
        records = zone_records(template)
        check_node_hosts(template, records)
        return cls(hosts_file, records)

    def start(self) -> PrivateZone:
        machine = self.machine_hosts.read_text()
        for record in self.records:
            if any(record.name in line.split("#", 1)[0].split()[1:] for line in machine.splitlines()):
                raise PrivateZoneUnavailable(
                    f"{self.machine_hosts} already resolves {record.name}: the rehearsal cannot hold the name back "
                    "until its record exists; remove that line"
                )
        self.hosts_file.parent.mkdir(parents=True, exist_ok=True)
        self.hosts_file.write_text(machine if machine.endswith("\n") or not machine else machine + "\n")
        unshare, mount, sh = (shutil.which(tool) for tool in ("unshare", "mount", "sh"))
        if not (unshare and mount and sh):
            raise PrivateZoneUnavailable(
                "unshare, mount and sh are needed: each node process gets its own /etc/hosts in a private mount "
                "namespace (apt-get install util-linux mount)"
            )
        self.command_prefix = (
            unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            sh,
            "-c",
            _ENTER.format(mount=shlex.quote(mount)),
            str(self.hosts_file),
        )
        probe = subprocess.run([*self.command_prefix, "true"], capture_output=True, text=True, check=False, timeout=30)
        if probe.returncode:
            raise PrivateZoneUnavailable(
                "the cluster rehearsal runs each node process in a private mount namespace with its own /etc/hosts "
                "(unshare --mount, then mount --bind), which needs root or CAP_SYS_ADMIN: "
                + (probe.stderr.strip() or f"exit status {probe.returncode}")
                + (_CHROOT_HINT if "propagation" in probe.stderr else "")
            )
        return self

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run in a node's view of the zone."""
        return [*self.command_prefix, *argv]

    def signalled(self, role: str) -> list[ZoneRecord]:
        """A node of `role` passed its health gate (its instance signalled): create every record that waited
        only for it and the nodes signalled before. Returns the records created now."""
        with self._lock:
            self._healthy.add(role)
            due = [r for r in self.records if r.name not in self.created and r.created_after <= self._healthy]
            if due:
                with self.hosts_file.open("a") as hosts:  # append: the bind mounts pin this inode
                    hosts.writelines(f"{RECORD_ADDRESS} {record.name}\n" for record in due)
                for record in due:
                    self.created[record.name] = time.monotonic()
            return due

    def missing(self) -> list[ZoneRecord]:
        with self._lock:
            return [record for record in self.records if record.name not in self.created]

    def explain(self, failure: str) -> str | None:
        """Why a node that failed during the boot may have failed: it resolved a name whose record did not exist yet."""
        if not any(message in failure for message in NXDOMAIN_MESSAGES):
            return None
        missing = self.missing()
        named = [record for record in missing if record.name in failure] or missing
        if not named:
            return None
        return "; ".join(
            f"{record.name} does not resolve yet (NXDOMAIN, as from the VPC resolver): its record is "
            f"{record.describe()}"
            for record in named
        )
