"""Typed access to what aws-cdk-lib builds inside its own constructs.

aws-cdk-lib types `node.default_child` as `IConstruct | None` and `node.find_child` as `IConstruct`: which
L1 resource or construct sits there is known only at run time. These helpers check it in one place, with
an error naming the construct, so callers get the class they use (and mypy can check them).
"""

from __future__ import annotations

from typing import TypeVar

import aws_cdk as cdk
from constructs import IConstruct

T = TypeVar("T", bound=IConstruct)


def cfn_resource(scope: IConstruct) -> cdk.CfnResource:
    """`scope` itself when it is a CloudFormation resource, else the L1 resource an L2 construct wraps."""
    resource = scope if isinstance(scope, cdk.CfnResource) else scope.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(
            f"{scope.node.path} is no CloudFormation resource and has none as its default child "
            f"(found {type(resource).__name__})"
        )
    return resource


def typed_child(scope: IConstruct, child_id: str, kind: type[T]) -> T:
    """`scope`'s child `child_id`, which aws-cdk-lib builds as a `kind`."""
    found = scope.node.find_child(child_id)
    if not isinstance(found, kind):
        raise TypeError(f"{found.node.path} is a {type(found).__name__}, not the {kind.__name__} expected")
    return found
