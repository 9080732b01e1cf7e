"""SES identities for the outcome mail: the sender, and the recipient (needed while SES is in its sandbox)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from constructs import Construct


class Mail(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, sender_email: str, alert_email: str) -> None:
        super().__init__(scope, construct_id)
        self.sender_email = sender_email
        self.alert_email = alert_email
        addresses = dict.fromkeys((sender_email, alert_email))
        self.identities = [
            ses.EmailIdentity(self, "Sender" if address == sender_email else "Recipient", identity=ses.Identity.email(address))
            for address in addresses
        ]

    def identity_arns(self) -> list[str]:
        stack = cdk.Stack.of(self)
        return [stack.format_arn(service="ses", resource="identity", resource_name=identity.email_identity_name) for identity in self.identities]

    def grant_send(self, grantee: iam.IGrantable) -> None:
        # In the SES sandbox, IAM authorizes SendRawEmail against the recipient identity too.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["ses:SendEmail", "ses:SendRawEmail"], resources=self.identity_arns())
        )
