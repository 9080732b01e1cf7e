"""Concrete, well-formed example values for the references of a synthesized template.

IAM tools that only read ARNs see the stack's real ARN shapes through them (stacks/cfn_values.py renders
the intrinsics; this supplies what a Ref or Fn::GetAtt becomes).
"""

from __future__ import annotations

import hashlib
from typing import Any

from stacks.cfn_values import render


class ExampleValues:
    """Concrete, well-formed example values for one template's references.

    Physical names are taken from the template where it sets them (RoleName, InstanceProfileName,
    BucketName, ...), else made from the logical id, so names the template ties together stay equal.
    ARNs follow each resource type's documented ARN format.
    """

    ACCOUNT = "123456789012"
    PARTITION = "aws"
    NAME_PROPERTIES = {
        "AWS::IAM::Role": "RoleName",
        "AWS::IAM::InstanceProfile": "InstanceProfileName",
        "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
        "AWS::S3::Bucket": "BucketName",
        "AWS::SES::EmailIdentity": "EmailIdentity",
        "AWS::Logs::LogGroup": "LogGroupName",
    }

    ID_PREFIXES = {
        "AWS::EC2::SecurityGroup": "sg",
        "AWS::EC2::Subnet": "subnet",
        "AWS::EC2::VPC": "vpc",
        "AWS::EC2::Instance": "i",
        "AWS::EFS::FileSystem": "fs",
    }

    def __init__(self, template: dict, *, region: str, stack_name: str) -> None:
        self.resources = template.get("Resources", {})
        self.region = region
        self.stack_name = stack_name

    def render(self, value: Any) -> str:
        return render(value, self.ref, self.get_att)

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::AccountId": self.ACCOUNT,
            "AWS::Partition": self.PARTITION,
            "AWS::Region": self.region,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:{self.PARTITION}:cloudformation:{self.region}:{self.ACCOUNT}:stack/{self.stack_name}/example",
        }
        if name in pseudo:
            return pseudo[name]
        resource = self.resources.get(name)
        if resource is None:
            raise ValueError(f"Ref to {name}, which is neither a pseudo parameter nor a resource of the template")
        if resource["Type"] == "AWS::SecretsManager::Secret":
            return self._arn("secretsmanager", f"secret:{name}-AbCdEf")
        if resource["Type"] == "AWS::SecretsManager::SecretTargetAttachment":
            return self.ref(resource["Properties"]["SecretId"]["Ref"])
        if resource["Type"] in self.ID_PREFIXES:
            return self._id(name)
        return self.physical_name(name)

    def _id(self, name: str) -> str:
        """An EC2-style id (sg-…, subnet-…) made from the logical id, stable across runs."""
        return f"{self.ID_PREFIXES[self.resources[name]['Type']]}-{hashlib.sha256(name.encode()).hexdigest()[:17]}"

    def physical_name(self, name: str) -> str:
        resource = self.resources[name]
        prop = self.NAME_PROPERTIES.get(resource["Type"])
        given = resource.get("Properties", {}).get(prop) if prop else None
        if given is not None:
            return render(given, self.ref, self.get_att)
        if resource["Type"] == "AWS::S3::Bucket":
            return f"{self.stack_name}-{name}".lower()
        return f"{self.stack_name}-{name}"

    def get_att(self, name: str, attribute: str) -> str:
        if name == "AWS" or name.startswith("AWS::"):
            return self.ref(f"{name}::{attribute}" if name == "AWS" else name)
        resource_type = self.resources[name]["Type"]
        physical = self.physical_name(name)
        arns = {
            "AWS::IAM::Role": lambda: f"arn:{self.PARTITION}:iam::{self.ACCOUNT}:role/{physical}",
            "AWS::IAM::InstanceProfile": lambda: (
                f"arn:{self.PARTITION}:iam::{self.ACCOUNT}:instance-profile/{physical}"
            ),
            "AWS::S3::Bucket": lambda: f"arn:{self.PARTITION}:s3:::{physical}",
            "AWS::EFS::FileSystem": lambda: self._arn("elasticfilesystem", f"file-system/{self._id(name)}"),
            "AWS::Logs::LogGroup": lambda: self._arn("logs", f"log-group:{physical}:*"),
        }
        if attribute == "Arn" and resource_type in arns:
            return arns[resource_type]()
        if attribute == "GroupId" and resource_type == "AWS::EC2::SecurityGroup":
            return self._id(name)
        if attribute == "DefaultSecurityGroup" and resource_type == "AWS::EC2::VPC":
            return f"sg-{hashlib.sha256(f'{name}.default'.encode()).hexdigest()[:17]}"
        raise ValueError(f"no example value for {name}.{attribute} ({resource_type})")

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:{self.PARTITION}:{service}:{self.region}:{self.ACCOUNT}:{resource}"
