"""Mail: SES identities and the send grant.

stacks/constructs/mail.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import json

from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from stacks.constructs.mail import Mail

from ..infra_support import bare_stack


def test_mail_identities_and_send_scoped_to_them():
    stack = bare_stack()
    mail = Mail(stack, "Mail", sender_email="airflow@example.com", alert_email="ops@example.com")
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    mail.grant_send(role)
    t = Template.from_stack(stack)
    t.has_resource_properties("AWS::SES::EmailIdentity", {"EmailIdentity": "airflow@example.com"})
    t.has_resource_properties("AWS::SES::EmailIdentity", {"EmailIdentity": "ops@example.com"})
    statement = next(iter(t.find_resources("AWS::IAM::Policy").values()))["Properties"]["PolicyDocument"]["Statement"][
        0
    ]
    assert statement["Action"] == ["ses:SendEmail", "ses:SendRawEmail"]
    assert len(statement["Resource"]) == 2 and ":identity/" in str(statement["Resource"])


def test_mail_with_one_address_creates_one_identity():
    stack = bare_stack()
    Mail(stack, "Mail", sender_email="me@example.com", alert_email="me@example.com")
    Template.from_stack(stack).resource_count_is("AWS::SES::EmailIdentity", 1)


def test_mail_reuses_an_existing_identity_and_still_grants_send_on_it():
    # An identity that already exists makes AWS::SES::EmailIdentity fail with AlreadyExists.
    stack = bare_stack()
    mail = Mail(
        stack,
        "Mail",
        sender_email="airflow@corp.dev",
        alert_email="ops@corp.dev",
        existing_identities=("airflow@corp.dev",),
    )
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    mail.grant_send(role)
    t = Template.from_stack(stack)
    identities = [r["Properties"]["EmailIdentity"] for r in t.find_resources("AWS::SES::EmailIdentity").values()]
    assert identities == ["ops@corp.dev"]
    statement = next(iter(t.find_resources("AWS::IAM::Policy").values()))["Properties"]["PolicyDocument"]["Statement"][
        0
    ]
    resources = json.dumps(statement["Resource"])
    assert ":identity/airflow@corp.dev" in resources and len(statement["Resource"]) == 2


def test_mail_with_a_verified_domain_creates_no_identity():
    stack = bare_stack()
    mail = Mail(
        stack, "Mail", sender_email="airflow@corp.dev", alert_email="ops@corp.dev", existing_identities=("corp.dev",)
    )
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    mail.grant_send(role)
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::SES::EmailIdentity", 0)
    statement = next(iter(t.find_resources("AWS::IAM::Policy").values()))["Properties"]["PolicyDocument"]["Statement"][
        0
    ]
    resource = statement["Resource"]
    assert json.dumps(resource).endswith(':identity/corp.dev"]]}'), resource
