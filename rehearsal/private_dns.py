"""The cluster's private DNS zone, as the nodes see it: a record's name resolves only once CloudFormation
would have created the record.

The template's api-server record (AWS::Route53::RecordSet) takes the api-server instance's PrivateIp,
so CloudFormation creates it only after that instance is CREATE_COMPLETE, i.e. after its CreationPolicy
signal (its health gate). Here every node process resolves names through nss_wrapper (Debian's
libnss-wrapper, LD_PRELOAD) with a hosts file of its own; the rehearsal adds a record to it when the
record's instance has passed its health gate. Names not in the file (numeric addresses, localhost)
are resolved by the machine as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rehearsal.aws.stack_template import template_nodes

LIBRARY_PATHS = ("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so", "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so",
                 "/usr/lib64/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so")


class PrivateDnsUnavailable(RuntimeError):
    pass


def nss_wrapper_library() -> str:
    found = next((path for path in LIBRARY_PATHS if os.path.isfile(path)), None)
    if found is None:
        raise PrivateDnsUnavailable("libnss_wrapper.so is missing: the cluster rehearsal resolves the api-server's "
                                    "DNS name through it (scripts/setup-machine.sh installs libnss-wrapper)")
    return found


def instance_records(template: Mapping[str, Any]) -> dict[str, str]:
    """AIRFLOW_ROLE -> the name of the A record that points at that role's instance (without the final dot)."""
    roles_by_instance = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::EC2::Instance":
            env = resource.get("Metadata", {}).get("AWS::CloudFormation::Init", {})
            if env:
                roles_by_instance[logical_id] = _role_of(template, logical_id)
    records = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Route53::RecordSet":
            continue
        for value in resource["Properties"].get("ResourceRecords", []):
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                instance, attribute = value["Fn::GetAtt"]
                if attribute == "PrivateIp" and instance in roles_by_instance:
                    records[roles_by_instance[instance]] = resource["Properties"]["Name"].rstrip(".")
    return records


def _role_of(template: Mapping[str, Any], logical_id: str) -> str:
    single = {"Resources": {logical_id: template["Resources"][logical_id]}}
    return next(iter(template_nodes(single)))


class PrivateDns:
    def __init__(self, hosts_file: Path):
        self.library = nss_wrapper_library()
        self.hosts_file = hosts_file
        self.records: dict[str, str] = {}
        self._write()

    def environment(self) -> dict[str, str]:
        """What a node process needs to resolve through this zone."""
        return {"LD_PRELOAD": self.library, "NSS_WRAPPER_HOSTS": str(self.hosts_file)}

    def create_record(self, name: str, address: str) -> None:
        self.records[name] = address
        self._write()

    def _write(self) -> None:
        # A new file replaces the old one: nss_wrapper reloads a hosts file whose inode or mtime changed.
        self.hosts_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.hosts_file.with_suffix(".tmp")
        partial.write_text("".join(f"{address} {name}\n" for name, address in self.records.items()))
        partial.replace(self.hosts_file)
