"""No open ingress, no secret value in any template, asset or user data."""

from __future__ import annotations

import json
import re

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
        assert not (rule.get("FromPort", -1) <= 22 <= rule.get("ToPort", -1) and "CidrIp" in rule), f"{logical_id} opens SSH"
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
    hits = [m.group(0) for m in SECRET_ASSIGNMENT.finditer(text) if not m.group(2).lower().startswith(("generate", "secretstring"))]
    assert hits == []
    for instance in assemblies[variant].resources("AWS::EC2::Instance").values():
        env = json.dumps(instance["Metadata"]["AWS::CloudFormation::Init"]["files"]["files"]["/etc/airflow/node.env"])
        assert "resolve:secretsmanager" not in env, "nodes get secret ids, never resolved values"
        assert not re.search(r"(PASSWORD|TOKEN|KEY|SECRET)=(?!<|\\u003c)[^\\n]", env.replace("_SECRET_ID=", "_ID=")), env


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
        literal = [m.group(0) for m in SECRET_ASSIGNMENT.finditer(text) if "{" not in m.group(0) and "$" not in m.group(0)]
        assert literal == [], f"{path}: {literal}"
    assert scanned > 0
