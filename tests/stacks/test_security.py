"""No open ingress, no secret value in any template, asset or user data."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch

import pytest

from .infra_support import VARIANTS

OPEN_CIDRS = {"0.0.0.0/0", "::/0"}
# A secret-looking name assigned a quoted literal value (code, JSON, YAML, ini).
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)(password|passwd|secret|token|fernet_key)\w*["']?\s*[:=]\s*["']([A-Za-z0-9+/_=-]{12,})["']"""
)
AWS_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def ingress_rules(template: dict):
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            for rule in resource["Properties"].get("SecurityGroupIngress", []):
                yield logical_id, rule
        elif resource["Type"] == "AWS::EC2::SecurityGroupIngress":
            yield logical_id, resource["Properties"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_ingress_from_anywhere_and_no_ssh(assemblies, variant):
    for logical_id, rule in ingress_rules(assemblies[variant].template):
        assert rule.get("CidrIp") not in OPEN_CIDRS and rule.get("CidrIpv6") not in OPEN_CIDRS, logical_id
        assert not (rule.get("FromPort", -1) <= 22 <= rule.get("ToPort", -1) and "CidrIp" in rule), (
            f"{logical_id} opens SSH"
        )
        assert "CidrIp" not in rule or rule["CidrIp"] == VARIANTS[variant].get("allowed_ui_cidr"), logical_id


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_instance_has_a_key_pair_or_public_address(assemblies, variant):
    for instance in assemblies[variant].resources("AWS::EC2::Instance").values():
        assert "KeyName" not in instance["Properties"]
        assert "NetworkInterfaces" not in instance["Properties"]
    for template in assemblies[variant].resources("AWS::EC2::LaunchTemplate").values():
        assert "KeyName" not in template["Properties"]["LaunchTemplateData"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_secrets_are_generated_and_only_referenced(assemblies, variant):
    assembly = assemblies[variant]
    for logical_id, secret in assembly.resources("AWS::SecretsManager::Secret").items():
        assert "SecretString" not in secret["Properties"], logical_id
        assert "GenerateSecretString" in secret["Properties"], logical_id
    for db in assembly.resources("AWS::RDS::DBInstance").values():
        assert "{{resolve:secretsmanager:" in json.dumps(db["Properties"]["MasterUserPassword"])
    for cache in assembly.resources("AWS::ElastiCache::ReplicationGroup").values():
        assert json.dumps(cache["Properties"]["AuthToken"]).startswith('{"Fn::Join": ["", ["{{resolve:secretsmanager:')


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_secret_value_in_templates_or_user_data(assemblies, variant):
    text = assemblies[variant].template_path.read_text()
    assert not AWS_ACCESS_KEY.search(text)
    hits = [
        m.group(0)
        for m in SECRET_ASSIGNMENT.finditer(text)
        if not m.group(2).lower().startswith(("generate", "secretstring"))
    ]
    assert hits == []
    for instance in assemblies[variant].resources("AWS::EC2::Instance").values():
        env = json.dumps(instance["Metadata"]["AWS::CloudFormation::Init"]["files"]["files"]["/etc/airflow/node.env"])
        assert "resolve:secretsmanager" not in env, "nodes get secret ids, never resolved values"
        assert not re.search(r"(PASSWORD|TOKEN|KEY|SECRET)=(?!<|\\u003c)[^\\n]", env.replace("_SECRET_ID=", "_ID=")), (
            env
        )


def test_no_secret_value_in_any_staged_asset(dev):
    scanned = 0
    for path in dev.outdir.glob("asset.*/**/*"):
        if not path.is_file() or path.suffix in {".zip", ".so", ".pyc"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        scanned += 1
        assert not AWS_ACCESS_KEY.search(text), path
        literal = [
            m.group(0) for m in SECRET_ASSIGNMENT.finditer(text) if "{" not in m.group(0) and "$" not in m.group(0)
        ]
        assert literal == [], f"{path}: {literal}"
    assert scanned > 0


# Security groups whose code asks for allow-all egress: the Airflow nodes (package installs, AWS APIs through
# NAT) and EMR's primary/core groups (EMR requires it for private subnets).
ALLOW_ALL_EGRESS_GROUPS = ("NetworkAirflowNodesSg", "EmrSecurityGroupsPrimary", "EmrSecurityGroupsCore")
ANYWHERE = {"CidrIp": "0.0.0.0/0", "IpProtocol": "-1"}


def effective_egress(template: dict) -> dict[str, list[dict]]:
    """Each security group's egress rules as EC2 applies them: a group created without any rule in its
    SecurityGroupEgress property gets EC2's default allow-all rule, and separate AWS::EC2::SecurityGroupEgress
    resources are added to what it has (they never remove that default)."""
    resources = template["Resources"]
    egress = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::EC2::SecurityGroup":
            inline = resource["Properties"].get("SecurityGroupEgress") or []
            egress[logical_id] = [dict(rule) for rule in inline] or [dict(ANYWHERE, Description="EC2 default")]
    for resource in resources.values():
        if resource["Type"] == "AWS::EC2::SecurityGroupEgress":
            group = resource["Properties"]["GroupId"]["Fn::GetAtt"][0]
            egress[group].append(resource["Properties"])
    return egress


def allows_anywhere(rule: dict) -> bool:
    return rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_only_the_groups_meant_to_have_open_egress_have_it(assemblies, variant):
    for logical_id, rules in effective_egress(assemblies[variant].template).items():
        open_rules = [rule for rule in rules if allows_anywhere(rule)]
        assert bool(open_rules) == logical_id.startswith(ALLOW_ALL_EGRESS_GROUPS), (logical_id, rules)


def test_emr_service_access_egress_is_exactly_the_cluster_manager_port(dev):
    template = dev.template
    groups = effective_egress(template)
    service_access = next(group for group in groups if group.startswith("EmrSecurityGroupsServiceAccess"))
    reachable = [
        rule
        for rule in groups[service_access]
        if not (rule.get("CidrIp") == "255.255.255.255/32" and rule["IpProtocol"] == "icmp")
    ]
    assert sorted(
        (rule["DestinationSecurityGroupId"]["Fn::GetAtt"][0], rule["IpProtocol"], rule["FromPort"], rule["ToPort"])
        for rule in reachable
    ) == sorted(
        (group, "tcp", 8443, 8443)
        for group in groups
        if group.startswith(("EmrSecurityGroupsPrimary", "EmrSecurityGroupsCore"))
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_vpc_default_security_group_is_stripped_of_its_rules(assemblies, variant):
    # EC2 gives each VPC a default group that admits its members and sends anywhere; nothing in the template
    # can change its rules except aws-cdk-lib's custom resource, which revokes them at deploy time.
    resources = assemblies[variant].template["Resources"]
    vpcs = [logical_id for logical_id, resource in resources.items() if resource["Type"] == "AWS::EC2::VPC"]
    assert vpcs
    restricted = {
        resource["Properties"]["DefaultSecurityGroupId"]["Fn::GetAtt"][0]
        for resource in resources.values()
        if resource["Type"] == "Custom::VpcRestrictDefaultSG"
    }
    assert restricted == set(vpcs)


def readable_secrets(template: dict, instance_id: str) -> set[str]:
    """Logical ids of the secrets (or their RDS attachment) that the instance's role may GetSecretValue on."""
    resources = template["Resources"]
    profile = resources[instance_id]["Properties"]["IamInstanceProfile"]["Ref"]
    roles = {role["Ref"] for role in resources[profile]["Properties"]["Roles"]}
    readable: set[str] = set()
    for policy in resources.values():
        if policy["Type"] != "AWS::IAM::Policy" or not roles & {r.get("Ref") for r in policy["Properties"]["Roles"]}:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Effect"] != "Allow" or not any(fnmatch("secretsmanager:GetSecretValue", a) for a in actions):
                continue
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            readable |= {t["Ref"] if isinstance(t, dict) and "Ref" in t else json.dumps(t) for t in targets}
    return readable


@pytest.mark.parametrize("variant", ["dev", "prod"])
def test_worker_role_cannot_read_the_db_master_jwt_fernet_or_admin_secret(assemblies, variant):
    template = assemblies[variant].template
    instances = assemblies[variant].resources("AWS::EC2::Instance")
    worker = next(i for i in instances if i.startswith("Worker"))
    control = [i for i in instances if not i.startswith("Worker")]
    secrets = {
        **assemblies[variant].resources("AWS::SecretsManager::Secret"),
        **assemblies[variant].resources("AWS::SecretsManager::SecretTargetAttachment"),
    }

    def named(*prefixes: str) -> set[str]:
        return {s for s in secrets if s.startswith(prefixes)}

    forbidden = named("MetadataDb", "SecretsFernetSeed", "SecretsJwtSecret", "SecretsAdminPassword")
    needed = named("SecretsApiSecretKey", "Broker")
    assert len(forbidden) >= 4 and len(needed) == 2, sorted(secrets)
    worker_reads = readable_secrets(template, worker)
    assert worker_reads & forbidden == set() and not any("*" in r for r in worker_reads), worker_reads
    assert needed <= worker_reads
    for instance in control:
        assert forbidden | needed <= readable_secrets(template, instance), instance
