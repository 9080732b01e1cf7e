"""cdk-nag acknowledgments: each names one exact finding id and why it is accepted."""

from __future__ import annotations

import re
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import IConstruct

EMR_TAG_KEY = "for-use-with-amazon-emr-managed-policies"
# The validation plugin name cdk-nag's AwsSolutionsChecks reports under; qualified ids name it.
PLUGIN = "AwsSolutions"


def acknowledge(scope: IConstruct, finding_id: str, reason: str) -> None:
    """Acknowledge exactly one finding (e.g. "AwsSolutions-IAM5[Action::s3:List*]") on `scope` and below."""
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{PLUGIN}::{finding_id}", reason=reason))


def _render(value: Any) -> str:
    """A resolved CloudFormation value in cdk-nag's notation (<Ref>, <Ref.Attr>, Fn::Join flattened)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return re.sub(r"\$\{([^}]+)\}", r"<\1>", value["Fn::Sub"])
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    raise ValueError(f"cannot render {value!r} as a cdk-nag finding id")


def wildcard_resource_finding(scope: IConstruct, resource: str) -> str:
    """The AwsSolutions-IAM5 finding id cdk-nag reports for a wildcard resource ARN."""
    return f"AwsSolutions-IAM5[Resource::{_render(cdk.Stack.of(scope).resolve(resource))}]"


def acknowledge_wildcard_resources(policy: IConstruct, statements: list[iam.PolicyStatement], reason: str) -> None:
    for statement in statements:
        for resource in statement.resources:
            if "*" in _render(cdk.Stack.of(policy).resolve(resource)):
                acknowledge(policy, wildcard_resource_finding(policy, resource), reason)
