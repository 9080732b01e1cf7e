"""Shared helpers of the infrastructure tests (imported relatively: every tests/ folder has its own
conftest.py, so `from conftest import ...` could pick up another folder's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_assets.bootstrap import node_env_file
from stacks.cfn_values import Ref, placeholder_ref, render  # tokens shown as <Ref> / <Res.Attr>
from stacks.config import cdk_json_context

if TYPE_CHECKING:
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk.assertions import Template

# aws_cdk is imported inside the helpers: importing it starts the jsii runtime, which should see the
# environment conftest.py's pytest_configure sets first.

# name -> context overrides; together they cover every branch of the stack.
VARIANTS: dict[str, dict] = {
    "dev": {},
    "prod": {"stage": "prod", "scheduler_count": 2, "allowed_ui_cidr": "10.20.0.0/16", "nat_gateways": 2},
    "local_executor": {
        "executor": "LocalExecutor",
        "input_uri": "s3://cjm-oregon/champion/data/Mall_Customers.csv",
        "output_uri": "s3://cjm-oregon/champion/output/",
    },
}


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    stack_name: str

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{self.stack_name}.template.json"

    @property
    def template(self) -> dict:
        return json.loads(self.template_path.read_text())

    @property
    def metadata(self) -> dict:
        return json.loads((self.outdir / f"{self.stack_name}.metadata.json").read_text())

    def resources(self, cfn_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == cfn_type}

    def acknowledgments(self, plugin: str = "AwsSolutions") -> list[tuple[str, str, str]]:
        """(construct path, finding id, reason) of every acknowledgment for `plugin`."""
        found = []
        for path, entries in self.metadata.items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    for qualified, reason in entry["data"].items():
                        if qualified.startswith(f"{plugin}::"):
                            found.append((path.lstrip("/"), qualified.split("::", 1)[1], reason))
        return found


def synthesize(outdir: Path, overrides: dict) -> Assembly:
    from app import build_app

    app = build_app(overrides, outdir=str(outdir))
    app.synth()
    stack = next(c for c in app.node.children if hasattr(c, "stack_name"))
    return Assembly(outdir, stack.stack_name)


def node_env(template: dict, logical_prefix: str, *, ref: Ref = placeholder_ref) -> str:
    """The rendered /etc/airflow/node.env of one instance, tokens shown as <Ref> / <Res.Attr> (or as `ref`
    makes Refs, e.g. a bucket's physical name)."""
    instance = next(
        v
        for k, v in template["Resources"].items()
        if k.startswith(logical_prefix) and v["Type"] == "AWS::EC2::Instance"
    )
    content = instance["Metadata"]["AWS::CloudFormation::Init"]["files"]["files"]["/etc/airflow/node.env"]["content"]
    return render(content, ref=ref)


def parse_env(text: str) -> dict[str, str]:
    return node_env_file.parse(text)


def bare_stack() -> cdk.Stack:
    """An empty stack for one construct; the app's feature flags (cdk.json) apply to it, too."""
    import aws_cdk as cdk

    return cdk.Stack(cdk.App(context=cdk_json_context()), "Bare", env=cdk.Environment(region="us-west-2"))


def stack_with_vpc() -> tuple[cdk.Stack, ec2.Vpc, ec2.SecurityGroup]:
    """A bare stack with a two-AZ VPC and a security group standing for a construct's clients."""
    from aws_cdk import aws_ec2 as ec2

    stack = bare_stack()
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    clients = ec2.SecurityGroup(stack, "Clients", vpc=vpc)
    return stack, vpc, clients


def ingress_from(template: Template, port: int) -> dict:
    """The properties of the one ingress rule that opens `port`."""
    rules = template.find_resources(
        "AWS::EC2::SecurityGroupIngress", {"Properties": {"FromPort": port, "ToPort": port}}
    )
    assert len(rules) == 1, rules
    return next(iter(rules.values()))["Properties"]
