"""cdk-nag acknowledgments: each names one exact finding id and why it is accepted."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from stacks.cfn import cfn_resource
from stacks.cfn_values import render

EMR_TAG_KEY = "for-use-with-amazon-emr-managed-policies"
# The validation plugin name cdk-nag's AwsSolutionsChecks reports under; qualified ids name it.
PLUGIN = "AwsSolutions"


def acknowledge(scope: IConstruct, finding_id: str, reason: str) -> None:
    """Acknowledge exactly one finding (e.g. "AwsSolutions-IAM5[Action::s3:List*]") on `scope` and below."""
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{PLUGIN}::{finding_id}", reason=reason))


def wildcard_resource_finding(scope: IConstruct, resource: str) -> str:
    """The AwsSolutions-IAM5 finding id cdk-nag reports for a wildcard resource ARN (references as <Ref>,
    <Ref.Attr>, Fn::Join flattened: cdk-nag's notation, the renderer's placeholders)."""
    return f"AwsSolutions-IAM5[Resource::{render(cdk.Stack.of(scope).resolve(resource))}]"


def acknowledge_wildcard_resources(policy: IConstruct, statements: list[iam.PolicyStatement], reason: str) -> None:
    for statement in statements:
        for resource in statement.resources:
            if "*" in render(cdk.Stack.of(policy).resolve(resource)):
                acknowledge(policy, wildcard_resource_finding(policy, resource), reason)


def acknowledge_checkov(scope: IConstruct, check_id: str, reason: str) -> None:
    """Acknowledge one checkov check on one resource: `scope` is a CfnResource or a construct whose
    default child is one. It is written to the resource's Metadata, where checkov reads skips."""
    resource = cfn_resource(scope)
    entry = resource.get_metadata("checkov") or {"skip": []}
    entry["skip"] = [*entry["skip"], {"id": check_id, "comment": reason}]
    resource.add_metadata("checkov", entry)


LOG_GROUP_DEFAULT_ENCRYPTION = (
    "CloudWatch Logs encrypts every log group at rest with service-managed keys; these records hold no secret, "
    "and a customer managed key would add a key policy for the logs service and a monthly key charge"
)

CDK_HANDLER_CHECKS = {
    "CKV_AWS_115": "reserved concurrency would only cap a handler that runs a few times per deployment",
    "CKV_AWS_116": "CloudFormation invokes it synchronously and reports a failure itself; a dead-letter queue would never be read",
    "CKV_AWS_117": "it calls only AWS APIs (S3, EC2) and reaches no VPC resource, so a VPC would add NAT traffic and ENIs for nothing",
}


def acknowledge_cdk_handler(handler: IConstruct, what: str) -> None:
    """The Lambda checks that do not fit aws-cdk-lib's own deploy-time custom-resource handlers."""
    for check_id, why in CDK_HANDLER_CHECKS.items():
        acknowledge_checkov(handler, check_id, f"{what}: {why}")
