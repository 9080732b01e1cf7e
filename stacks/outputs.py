"""Stack outputs created beside the construct they describe."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct


def add_output(scope: Construct, name: str, *, value: str, description: str) -> cdk.CfnOutput:
    """An output in `scope` under the stack-wide name `name` (what `cdk deploy` prints and
    describe-stacks returns), not a logical id derived from the construct path."""
    output = cdk.CfnOutput(scope, name, value=value, description=description)
    output.override_logical_id(name)
    return output
