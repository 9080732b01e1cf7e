"""The synthesized CloudFormation template, with its references bound to the emulator's resources.

The rehearsal's IAM is the template's IAM: the stack is synthesized once per process (aws-cdk-lib
through jsii, tens of seconds) and its references are rendered to what the seed created in the
emulator. The binding comes from the values the template hands the nodes (node.env: secret ids and
the emr_pipeline Variable): where the template says `"log_uri": "s3://<BucketsLogs…>/emr/"` and the
seed says `s3://airflow-emr-logs/emr/`, the bucket's Ref is `airflow-emr-logs`. A seed value that
does not fit the template's shape is an error, so seed and stack cannot drift apart silently.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_assets.bootstrap import node_env_file
from rehearsal.aws.example_values import ExampleValues
from stacks.cfn_values import references, render
from stacks.config import REPO_ROOT

NODE_ENV_PATH = node_env_file.PATH_ON_NODE  # where cfn-init writes it
PIPELINE_PARAMETER = "EMR_PIPELINE_JSON"
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9]+)(?:\.([A-Za-z0-9]+))?>")


@dataclass(frozen=True)
class SynthesizedStack:
    template: dict[str, Any]
    stack_name: str
    seconds: float


# Everything app.py's synthesis reads (stacks/config.py resolves the dataset under the repo), and the
# libraries that render it: a change to any of them is a new cache key.
SYNTH_INPUTS = (
    "app.py",
    "cdk.json",
    "requirements-airflow.txt",
    "stacks",
    "airflow_assets",
    "emr_steps",
    "sample_data",
)
SYNTH_LIBRARIES = ("aws-cdk-lib", "cdk-nag", "constructs")


def synth_cache_key() -> str:
    digest = hashlib.sha256()
    for library in SYNTH_LIBRARIES:
        digest.update(f"{library}=={importlib.metadata.version(library)}\n".encode())
    for name in SYNTH_INPUTS:
        root = REPO_ROOT / name
        files = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        )
        for path in files:
            digest.update(f"{path.relative_to(REPO_ROOT)}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "airflow-emr-rehearsal"


@functools.cache
def synthesized_stack() -> SynthesizedStack:
    """The default (dev) stack of app.py: synthesized once per process, or read from the cache of the same inputs."""
    started = time.monotonic()
    cached = _cache_dir() / f"template-{synth_cache_key()}.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
        return SynthesizedStack(data["template"], data["stack_name"], time.monotonic() - started)
    stack = _synthesize()
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"template": stack.template, "stack_name": stack.stack_name}))
    partial.replace(cached)  # atomic: parallel processes never read half a file
    return SynthesizedStack(stack.template, stack.stack_name, time.monotonic() - started)


def _synthesize() -> SynthesizedStack:
    started = time.monotonic()
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from app import build_app

    outdir = tempfile.mkdtemp(prefix="rehearsal-cdk-")
    app = build_app({}, outdir=outdir)
    app.synth()
    stack = next(child for child in app.node.children if hasattr(child, "stack_name"))
    template = json.loads((Path(outdir) / f"{stack.stack_name}.template.json").read_text())
    return SynthesizedStack(template, stack.stack_name, time.monotonic() - started)


class EmulatorValues(ExampleValues):
    """ExampleValues whose bound references are the emulator's names and ARNs."""

    def __init__(self, template: dict, *, region: str, stack_name: str, account: str, bindings: Mapping[str, str]):
        super().__init__(template, region=region, stack_name=stack_name)
        self.ACCOUNT = account
        self.bindings = dict(bindings)

    def ref(self, name: str) -> str:
        if name in self.bindings:
            return self.bindings[name]
        return super().ref(name)

    def physical_name(self, name: str) -> str:
        if name in self.bindings:
            return self.bindings[name]
        return super().physical_name(name)

    def get_att(self, name: str, attribute: str) -> str:
        if f"{name}.{attribute}" in self.bindings:
            return self.bindings[f"{name}.{attribute}"]
        return super().get_att(name, attribute)


class _Binder:
    def __init__(self, resources: Mapping[str, Any]):
        self.resources = resources
        self.bindings: dict[str, str] = {}

    def bind(self, what: str, shaped: str, actual: str) -> bool:
        """Bind the placeholders of `shaped` (e.g. s3://<Bucket>/emr/) so it reads `actual`; False if it has none."""
        parts = _PLACEHOLDER.split(shaped)
        if len(parts) == 1:
            return False
        pattern, names = "", []
        for index in range(0, len(parts), 3):
            pattern += re.escape(parts[index])
            if index + 1 < len(parts):
                name, attribute = parts[index + 1], parts[index + 2]
                names.append(f"{name}.{attribute}" if attribute else name)
                pattern += "(.+?)"
        match = re.fullmatch(pattern, actual)
        if not match:
            raise ValueError(f"rehearsal: the seeded {what} {actual!r} does not fit the template's {shaped!r}")
        for key, value in zip(names, match.groups(), strict=True):
            self._set(what, key, value)
        return True

    def _set(self, what: str, key: str, value: str) -> None:
        if self.bindings.setdefault(key, value) != value:
            raise ValueError(f"rehearsal: {what} binds {key} to {value!r}, but it is already {self.bindings[key]!r}")
        resource = self.resources.get(key, {})
        # CloudFormation names an instance profile after the role its name references; so does the binding.
        name = (
            resource.get("Properties", {}).get("InstanceProfileName")
            if resource.get("Type") == "AWS::IAM::InstanceProfile"
            else None
        )
        if isinstance(name, dict) and "Ref" in name:
            self._set(what, name["Ref"], value)


def node_env(template: Mapping[str, Any]) -> dict[str, str]:
    """node.env of the template's nodes (references as <Logical> / <Logical.Attr>); they agree on what binding reads."""
    params: dict[str, str] = {}
    for resource in template["Resources"].values():
        files = resource.get("Metadata", {}).get("AWS::CloudFormation::Init", {}).get("files", {}).get("files", {})
        if NODE_ENV_PATH in files:
            params.update(node_env_file.parse(render(files[NODE_ENV_PATH]["content"]), NODE_ENV_PATH))
    if not params:
        raise ValueError(f"rehearsal: the template renders no {NODE_ENV_PATH}")
    return params


def access_point_owner(template: Mapping[str, Any]) -> tuple[str, str]:
    """The uid and gid the template's EFS access point forces on every file (its PosixUser)."""
    posix_users = [
        resource["Properties"]["PosixUser"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::EFS::AccessPoint"
    ]
    if len(posix_users) != 1:
        raise ValueError(f"rehearsal: the template has {len(posix_users)} EFS access points, expected one")
    return str(posix_users[0]["Uid"]), str(posix_users[0]["Gid"])


BOOTSTRAP_COMMAND = ("bootstrap", "20-bootstrap")  # the config and key of the command that runs <role>.sh all


@dataclass(frozen=True)
class TemplateNode:
    """What the template gives one Airflow instance: its node.env (references as placeholders), the
    `env` map cfn-init runs the bootstrap command with (cfn-init's whole environment for it), and the
    cfn-init `files` entry's content that writes node.env (to render with other values for references)."""

    node_env: dict[str, str]
    command_env: dict[str, str]
    node_env_content: Any = None


def _instance_node_envs(template: Mapping[str, Any]):
    """(logical id, its cfn-init metadata, its node.env) of each instance cfn-init writes a node.env on."""
    for logical_id, resource in template["Resources"].items():
        init = resource.get("Metadata", {}).get("AWS::CloudFormation::Init", {})
        files = init.get("files", {}).get("files", {})
        if NODE_ENV_PATH in files:
            yield (
                logical_id,
                init,
                node_env_file.parse(render(files[NODE_ENV_PATH]["content"]), f"{logical_id} {NODE_ENV_PATH}"),
            )


def instance_roles(template: Mapping[str, Any]) -> dict[str, str]:
    """Logical id of each Airflow instance -> the AIRFLOW_ROLE its node.env names."""
    return {logical_id: params["AIRFLOW_ROLE"] for logical_id, _init, params in _instance_node_envs(template)}


def template_nodes(template: Mapping[str, Any]) -> dict[str, TemplateNode]:
    """The template's Airflow instances by AIRFLOW_ROLE."""
    nodes: dict[str, TemplateNode] = {}
    for logical_id, init, params in _instance_node_envs(template):
        config, key = BOOTSTRAP_COMMAND
        command = init.get(config, {}).get("commands", {}).get(key)
        if command is None:
            raise ValueError(f"rehearsal: {logical_id} has no cfn-init command {config}/{key}")
        nodes[params["AIRFLOW_ROLE"]] = TemplateNode(
            params,
            {k: render(v) for k, v in command.get("env", {}).items()},
            init["files"]["files"][NODE_ENV_PATH]["content"],
        )
    if not nodes:
        raise ValueError(f"rehearsal: the template renders no {NODE_ENV_PATH}")
    return nodes


def created_before(template: Mapping[str, Any]) -> dict[str, set[str]]:
    """logical id -> every resource CloudFormation must complete before creating it (transitively): what it
    references (Ref, Fn::GetAtt, Fn::Sub) and its DependsOn. A resource with a CreationPolicy is complete
    only once it signalled."""
    resources = template["Resources"]
    direct = {}
    for logical_id, resource in resources.items():
        depends = resource.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        direct[logical_id] = (set(depends) | references({k: v for k, v in resource.items() if k != "DependsOn"})) & set(
            resources
        )
    closure: dict[str, set[str]] = {}

    def walk(logical_id: str, trail: tuple[str, ...] = ()) -> set[str]:
        if logical_id in trail:
            raise ValueError(f"rehearsal: the template has a dependency cycle through {logical_id}")
        if logical_id not in closure:
            closure[logical_id] = set().union(
                *([direct[logical_id]] + [walk(d, (*trail, logical_id)) for d in direct[logical_id]])
            )
        return closure[logical_id]

    for logical_id in resources:
        walk(logical_id)
    return closure


def bind_to_emulator(
    stack: SynthesizedStack,
    *,
    region: str,
    account: str,
    pipeline_config: Mapping[str, Any],
    secret_ids: Mapping[str, str],
) -> tuple[EmulatorValues, dict[str, Any]]:
    """The template's values bound to the seed, and the emr_pipeline Variable the template renders for it.

    Values the template fixes (cluster_tags with the stack's name, the release label, the
    e-mail identities) are the template's; values it references are the seed's.
    """
    binder = _Binder(stack.template["Resources"])
    params = node_env(stack.template)
    for parameter, secret_arn in secret_ids.items():
        if parameter in params:
            binder.bind(parameter, params[parameter], secret_arn)
    shaped = json.loads(params[PIPELINE_PARAMETER])
    reconciled = dict(pipeline_config)
    for key, value in shaped.items():
        if (
            isinstance(value, str)
            and key in pipeline_config
            and binder.bind(f"emr_pipeline.{key}", value, str(pipeline_config[key]))
        ):
            continue
        reconciled[key] = value
    values = EmulatorValues(
        stack.template, region=region, stack_name=stack.stack_name, account=account, bindings=binder.bindings
    )
    return values, reconciled
