"""stacks/cfn.py: the typed access to what aws-cdk-lib builds inside its constructs names what it found."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.cfn import cfn_resource, typed_child


@pytest.fixture
def stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Typed")


def test_cfn_resource_is_the_resource_itself_or_the_l2_default_child(stack):
    queue = sqs.Queue(stack, "Queue")
    raw = cdk.CfnResource(stack, "Raw", type="AWS::SQS::Queue")
    # jsii hands out a new Python proxy per access, so constructs are compared by their path.
    assert cfn_resource(queue).node.path == "Typed/Queue/Resource"
    assert isinstance(cfn_resource(queue), sqs.CfnQueue)
    assert cfn_resource(raw).node.path == "Typed/Raw"


def test_cfn_resource_names_a_construct_without_one(stack):
    group = Construct(stack, "Group")
    with pytest.raises(TypeError, match=r"Typed/Group is no CloudFormation resource .*found NoneType"):
        cfn_resource(group)


def test_typed_child_returns_the_child_of_the_expected_class(stack):
    log_group = logs.LogGroup(stack, "Logs")
    assert typed_child(stack, "Logs", logs.LogGroup).node.path == log_group.node.path


def test_typed_child_names_a_child_of_another_class(stack):
    sqs.Queue(stack, "Queue")
    with pytest.raises(TypeError, match=r"Typed/Queue is a Queue, not the LogGroup expected"):
        typed_child(stack, "Queue", logs.LogGroup)
