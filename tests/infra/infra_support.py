"""Shared helpers of the infrastructure tests (imported relatively: every tests/ folder has its own
conftest.py, so `from conftest import ...` could pick up another folder's)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from airflow_assets.bootstrap import node_env_file  # noqa: E402
from stacks.cfn_values import render  # noqa: E402  (tokens shown as <Ref> / <Res.Attr>)

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


def node_env(template: dict, logical_prefix: str) -> str:
    """The rendered /etc/airflow/node.env of one instance, tokens shown as <Ref> / <Res.Attr>."""
    instance = next(
        v
        for k, v in template["Resources"].items()
        if k.startswith(logical_prefix) and v["Type"] == "AWS::EC2::Instance"
    )
    content = instance["Metadata"]["AWS::CloudFormation::Init"]["files"]["files"]["/etc/airflow/node.env"]["content"]
    return render(content)


def parse_env(text: str) -> dict[str, str]:
    return node_env_file.parse(text)
