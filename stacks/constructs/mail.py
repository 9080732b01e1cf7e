"""SES identities for the outcome mail: the sender, and the recipient (needed while SES is in its sandbox).

An identity that already exists in the account and region (an address, or its whole domain) is named in
`existing_identities` and reused: creating it again fails the deployment with AlreadyExists.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from constructs import Construct

from stacks.config import existing_identity_for


class Mail(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        sender_email: str,
        alert_email: str,
        existing_identities: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.sender_email = sender_email
        self.alert_email = alert_email
        stack = cdk.Stack.of(self)
        self.identities: list[ses.EmailIdentity] = []
        identity_names: list[str] = []
        for address in dict.fromkeys((sender_email, alert_email)):
            existing = existing_identity_for(address, existing_identities)
            if existing is None:
                identity = ses.EmailIdentity(
                    self, "Sender" if address == sender_email else "Recipient", identity=ses.Identity.email(address)
                )
                self.identities.append(identity)
                identity_names.append(identity.email_identity_name)
            else:
                identity_names.append(existing)
        self._identity_arns = [
            stack.format_arn(service="ses", resource="identity", resource_name=name)
            for name in dict.fromkeys(identity_names)
        ]

    def identity_arns(self) -> list[str]:
        return list(self._identity_arns)

    def grant_send(self, grantee: iam.IGrantable) -> None:
        # In the SES sandbox, IAM authorizes SendRawEmail against the recipient identity too.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["ses:SendEmail", "ses:SendRawEmail"], resources=self.identity_arns())
        )
