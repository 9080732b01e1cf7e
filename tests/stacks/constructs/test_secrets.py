"""AirflowSecrets: generated, never literal.

stacks/constructs/secrets.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk.assertions import Template

from stacks.constructs.secrets import AirflowSecrets

from ..infra_support import bare_stack

DESTROY = cdk.RemovalPolicy.DESTROY


def test_secrets_are_generated_never_literal():
    stack = bare_stack()
    AirflowSecrets(stack, "S", removal_policy=DESTROY, with_flower=True)
    t = Template.from_stack(stack)
    secrets = t.find_resources("AWS::SecretsManager::Secret")
    assert len(secrets) == 5
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert secret["Properties"]["GenerateSecretString"]["ExcludePunctuation"] is True
        assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 24
