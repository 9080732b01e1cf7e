"""CloudFormation values of a synthesized template, rendered to strings.

One renderer for the intrinsics aws-cdk-lib emits in this stack (Ref, Fn::GetAtt, Fn::Join and the
string form of Fn::Sub). Callers decide what a reference becomes: a placeholder such as <Logical.Attr>
(the infrastructure tests), or a concrete example or emulated value (the IAM checks), so IAM tools
that only read ARNs can see the stack's real ARN shapes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

Ref = Callable[[str], str]
GetAtt = Callable[[str, str], str]


def placeholder_ref(name: str) -> str:
    return f"<{name}>"


def placeholder_get_att(name: str, attribute: str) -> str:
    return f"<{name}.{attribute}>"


def render(value: Any, ref: Ref = placeholder_ref, get_att: GetAtt = placeholder_get_att) -> str:
    """A template value as a string; references become whatever `ref` / `get_att` make of them."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return ref(argument)
        if function == "Fn::GetAtt":
            name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return get_att(name, attribute)
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(render(part, ref, get_att) for part in parts)
        if function == "Fn::Sub" and isinstance(argument, str):

            def substitute(match: re.Match) -> str:
                name, _, attribute = match.group(1).partition(".")
                return get_att(name, attribute) if attribute else ref(name)

            return re.sub(r"\$\{([^}!][^}]*)\}", substitute, argument)
    raise ValueError(f"cannot render the CloudFormation value {value!r}")


def render_tree(value: Any, ref: Ref = placeholder_ref, get_att: GetAtt = placeholder_get_att) -> Any:
    """`render` applied to every intrinsic inside a JSON tree (e.g. a whole policy document)."""
    if isinstance(value, list):
        return [render_tree(item, ref, get_att) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::Join", "Fn::Sub"):
            return render(value, ref, get_att)
        return {key: render_tree(item, ref, get_att) for key, item in value.items()}
    return value


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
