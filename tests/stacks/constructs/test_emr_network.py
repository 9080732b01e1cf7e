"""EmrSecurityGroups: every rule EMR would add, declared up front.

stacks/constructs/emr_network.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

from aws_cdk.assertions import Template

from stacks.constructs.emr_network import EmrSecurityGroups

from ..infra_support import stack_with_vpc


def test_emr_security_groups_predeclare_every_rule_emr_adds():
    stack, vpc, _ = stack_with_vpc()
    groups = EmrSecurityGroups(stack, "Emr", vpc=vpc)
    t = Template.from_stack(stack)
    ids = {
        name: stack.resolve(getattr(groups, name).security_group_id) for name in ("primary", "core", "service_access")
    }
    ingress = [r["Properties"] for r in t.find_resources("AWS::EC2::SecurityGroupIngress").values()]

    def has(target, source, protocol, low, high):
        return any(
            r["GroupId"] == ids[target]
            and r["SourceSecurityGroupId"] == ids[source]
            and r["IpProtocol"] == protocol
            and r["FromPort"] == low
            and r["ToPort"] == high
            for r in ingress
        )

    for target in ("primary", "core"):
        for source in ("primary", "core"):
            assert has(target, source, "tcp", 0, 65535)
            assert has(target, source, "udp", 0, 65535)
            assert has(target, source, "icmp", -1, -1)
        assert has(target, "service_access", "tcp", 8443, 8443)
    assert has("service_access", "primary", "tcp", 9443, 9443)
    assert len(ingress) == 15
    egress = [r["Properties"] for r in t.find_resources("AWS::EC2::SecurityGroupEgress").values()]
    assert sorted((e["DestinationSecurityGroupId"] == ids["primary"], e["FromPort"]) for e in egress) == [
        (False, 8443),
        (True, 8443),
    ]
    for group in t.find_resources("AWS::EC2::SecurityGroup").values():
        if "EMR managed" in group["Properties"]["GroupDescription"]:
            assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in group["Properties"]["Tags"]
