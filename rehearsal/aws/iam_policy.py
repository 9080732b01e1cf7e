"""Decide whether an IAM principal of the synthesized template is allowed one AWS request.

What this builds on: parliament's IAM action database (AWS's Service Authorization Reference as
data: every action's resource types, their ARN formats and the condition keys each one supplies),
loaded through `rehearsal.aws.iam_lint`, and the published documents of the AWS managed policies the
stack attaches, checked in under `rehearsal/aws/iam/managed/` with their version id.

Why an evaluator of our own: parliament lints policies but never answers "is this request allowed";
policy_sentry writes policies from the same database and does not evaluate them either; moto's IAM
enforcement ignores conditions (no aws:RequestTag, iam:PassedToService, aws:ResourceTag), resource
types and managed policy contents; the IAM policy simulator needs an AWS account. So this module
implements only AWS's documented evaluation logic for identity-based policies and role trust
policies (explicit deny > allow > implicit deny; Action/NotAction, Resource/NotResource with IAM
wildcards; the condition operators, IfExists, ForAllValues/ForAnyValue, Null) and takes every
fact about actions from parliament's database: an action that supports no resource type is
authorised against "*" only (RunJobFlow), and a request carries only the context keys its action and
resource type supply (RunJobFlow has aws:RequestTag, not aws:ResourceTag). A request that could not
occur on AWS (unknown action, an ARN of the wrong resource type, a context key AWS would not send)
is rejected with ValueError instead of being evaluated.

Out of scope (the stack uses none of it): permission boundaries, SCPs, session policies,
resource-based policies other than trust policies, policy variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.aws.iam_lint import iam_definition
from stacks.cfn_values import render_tree

MANAGED_POLICY_DIR = Path(__file__).resolve().parent / "iam" / "managed"
_AWS_MANAGED_ARN = re.compile(r"^arn:[a-z-]+:iam::aws:policy/(?:.*/)?([^/]+)$")
# Global keys whose presence depends on the action / resource type (the others are always possible).
_TAG_KEY_PREFIXES = ("aws:requesttag/", "aws:resourcetag/", "aws:tagkeys")
_MULTIVALUED_KEYS = {"aws:tagkeys", "aws:calledvia"}

ContextValue = str | Sequence[str]


@dataclass(frozen=True)
class Request:
    """One authorisation request: e.g. ("elasticmapreduce:RunJobFlow", "*", {"aws:RequestTag/x": "y"})."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class PolicyDocument:
    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Principal:
    """An IAM role: its identity-based policies (inline and managed) and its trust policy."""

    name: str
    policies: tuple[PolicyDocument, ...]
    trust_policy: Mapping[str, Any] | None = None


# ---------------------------------------------------------------------------------------------
# Facts about actions, from parliament's IAM database


def _services(prefix: str) -> list[dict]:
    # Several services share a prefix (ses: SES v1, SES v2, Pinpoint Email, Mail Manager).
    found = [service for service in iam_definition() if service["prefix"] == prefix]
    if not found:
        raise ValueError(f"unknown IAM service prefix {prefix!r}")
    return found


def _privilege(action: str) -> tuple[dict, dict]:
    prefix, _, name = action.partition(":")
    for service in _services(prefix.lower()):
        for privilege in service["privileges"]:
            if privilege["privilege"].lower() == name.lower():
                return service, privilege
    raise ValueError(f"unknown IAM action {action!r}")


def _matches_format(arn_format: str, resource: str) -> bool:
    pattern = "^" + ".+".join(re.escape(part) for part in re.split(r"\$\{[^}]+\}", arn_format)) + "$"
    if not re.match(pattern, resource):
        return False
    # ${BucketName} must not swallow the "/" that separates bucket and object.
    return not (arn_format.endswith(":::${BucketName}") and "/" in resource.split(":::", 1)[1])


def resource_type_of(action: str, resource: str) -> str:
    """The resource type ("" for "*") of `resource` for `action`, or ValueError if AWS would not accept it."""
    service, privilege = _privilege(action)
    types = [entry["resource_type"].rstrip("*") for entry in privilege["resource_types"]]
    # A starred resource type is required: the request names such a resource, never "*".
    required = [
        entry["resource_type"].rstrip("*")
        for entry in privilege["resource_types"]
        if entry["resource_type"].endswith("*")
    ]
    if resource == "*":
        if required:
            raise ValueError(f"{action} is authorised against a resource ARN ({', '.join(required)}), not '*'")
        return ""
    formats = {entry["resource"]: entry["arn"] for entry in service["resources"]}
    for resource_type in filter(None, types):
        if resource_type in formats and _matches_format(formats[resource_type], resource):
            return resource_type
    if not any(types):
        raise ValueError(f"{action} supports no resource type: it is authorised against '*' only, not {resource}")
    raise ValueError(f"{resource} is not an ARN of a resource type of {action} ({', '.join(t for t in types if t)})")


def context_keys(action: str, resource_type: str) -> list[str]:
    """The condition keys AWS can supply for `action` on `resource_type` (as documented, with ${TagKey})."""
    service, privilege = _privilege(action)
    keys: list[str] = []
    for entry in privilege["resource_types"]:
        if entry["resource_type"].rstrip("*") in ("", resource_type):
            keys += entry["condition_keys"]
    for entry in service["resources"]:
        if entry["resource"] == resource_type:
            keys += entry["condition_keys"]
    return keys


def _key_supplied(key: str, documented: list[str]) -> bool:
    for pattern in documented:
        regex = "^" + re.sub(r"\\\$\\\{[^}]+\\\}|<key>", ".+", re.escape(pattern)) + "$"
        if re.match(regex, key, re.IGNORECASE):
            return True
    return False


def _check_context(request: Request, resource_type: str) -> None:
    documented = context_keys(request.action, resource_type)
    service_prefix = request.action.split(":", 1)[0].lower()
    for key in request.context:
        lowered = key.lower()
        scoped = lowered.startswith(_TAG_KEY_PREFIXES) or not lowered.startswith("aws:")
        if scoped and not _key_supplied(key, documented):
            target = f"resource type {resource_type!r}" if resource_type else "'*'"
            raise ValueError(
                f"AWS supplies no {key} for {request.action} on {target} (documented keys: {', '.join(documented) or 'none'})"
            )
        if (
            not lowered.startswith("aws:")
            and not lowered.startswith(service_prefix + ":")
            and not _key_supplied(key, documented)
        ):
            raise ValueError(f"{key} is not a condition key of {request.action}")


# ---------------------------------------------------------------------------------------------
# Policy evaluation (AWS's documented logic)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _arn_like(pattern: str, value: str) -> bool:
    # ArnLike compares the six colon-separated fields one by one; the last may contain colons.
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return _glob(pattern, value)
    return all(_glob(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


_OPERATORS = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (_glob, False),
    "StringNotLike": (_glob, True),
    "ArnEquals": (lambda p, v: p == v, False),
    "ArnNotEquals": (lambda p, v: p == v, True),
    "ArnLike": (_arn_like, False),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda p, v: str(p).lower() == str(v).lower(), False),
}


def _condition_holds(operator: str, key: str, policy_values: list, context: Mapping[str, ContextValue]) -> bool:
    set_operator, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    lookup = {k.lower(): v for k, v in context.items()}
    present = key.lower() in lookup
    if base == "Null":
        return (str(policy_values[0]).lower() == "true") == (not present)
    if base not in _OPERATORS:
        raise ValueError(f"condition operator {operator} is not supported by this evaluator")
    match, negated = _OPERATORS[base]
    if not present:
        if set_operator == "ForAllValues":
            return True
        return if_exists or negated
    values = [str(v) for v in _as_list(lookup[key.lower()])]
    policy_values = [str(p) for p in policy_values]

    def matches(value: str) -> bool:
        return any(match(p, value) for p in policy_values)

    if set_operator == "ForAllValues":
        return all(matches(v) != negated for v in values)
    if set_operator == "ForAnyValue":
        return any(matches(v) != negated for v in values)
    if len(values) != 1 or key.lower() in _MULTIVALUED_KEYS:
        raise ValueError(f"{key} is multivalued: a policy must test it with ForAllValues/ForAnyValue, not {operator}")
    return matches(values[0]) != negated


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]) -> bool:
    return all(
        _condition_holds(operator, key, _as_list(values), context)
        for operator, block in conditions.items()
        for key, values in block.items()
    )


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_glob(p, request.action, ignore_case=True) for p in _as_list(statement["Action"])):
            return False
    elif any(_glob(p, request.action, ignore_case=True) for p in _as_list(statement.get("NotAction", []))):
        return False
    if "Resource" in statement:
        if not any(_glob(p, request.resource) for p in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(_glob(p, request.resource) for p in _as_list(statement["NotResource"])):
        return False
    return _conditions_hold(statement.get("Condition", {}), request.context)


def _validated(request: Request) -> Request:
    _check_context(request, resource_type_of(request.action, request.resource))
    return request


def evaluate(principal: Principal, request: Request) -> Decision:
    """Is `principal` allowed `request` by its identity-based policies?"""
    request = _validated(request)
    allowed_by = None
    for policy in principal.policies:
        for index, statement in enumerate(_as_list(policy.document.get("Statement", []))):
            if not _statement_applies(statement, request):
                continue
            where = f"{policy.name} statement {statement.get('Sid') or index}"
            if statement["Effect"] == "Deny":
                return Decision(
                    False, f"{principal.name}: {request.action} on {request.resource} explicitly denied by {where}"
                )
            allowed_by = allowed_by or where
    if allowed_by:
        return Decision(True, f"{principal.name}: {request.action} on {request.resource} allowed by {allowed_by}")
    return Decision(
        False, f"{principal.name}: no statement allows {request.action} on {request.resource} (implicit deny)"
    )


def may_assume(principal: Principal, service: str, context: Mapping[str, ContextValue] | None = None) -> Decision:
    """May AWS service `service` (e.g. elasticmapreduce.amazonaws.com) assume the role, per its trust policy?"""
    context = context or {}
    for index, statement in enumerate(_as_list((principal.trust_policy or {}).get("Statement", []))):
        services = _as_list(statement.get("Principal", {}).get("Service", []))
        actions = _as_list(statement.get("Action", []))
        allows = statement["Effect"] == "Allow" and service in services and "sts:AssumeRole" in actions
        if allows and _conditions_hold(statement.get("Condition", {}), context):
            return Decision(
                True, f"{principal.name}: {service} may assume it (trust statement {statement.get('Sid') or index})"
            )
    return Decision(False, f"{principal.name}: its trust policy does not let {service} assume it with {dict(context)}")


# ---------------------------------------------------------------------------------------------
# The principals of a synthesized template


def load_managed_policy(arn: str) -> PolicyDocument:
    """The checked-in published document of an AWS managed policy (ValueError when it is not checked in)."""
    match = _AWS_MANAGED_ARN.match(arn)
    if not match:
        raise ValueError(f"{arn} is not an AWS managed policy ARN")
    path = MANAGED_POLICY_DIR / f"{match.group(1)}.json"
    if not path.exists():
        raise ValueError(
            f"the document of AWS managed policy {arn} is not checked in: add {path.relative_to(MANAGED_POLICY_DIR.parents[2])}"
        )
    data = json.loads(path.read_text())
    return PolicyDocument(f"{data['PolicyName']} ({data['VersionId']})", data["Document"])


class TemplateIam:
    """The IAM roles of a synthesized template, with references rendered by `values` (ref / get_att)."""

    def __init__(self, template: Mapping[str, Any], values: Any) -> None:
        self.resources = template["Resources"]
        self.values = values

    def _render(self, tree: Any) -> Any:
        return render_tree(tree, self.values.ref, self.values.get_att)

    def roles(self) -> list[str]:
        return [name for name, resource in self.resources.items() if resource["Type"] == "AWS::IAM::Role"]

    def role_named(self, prefix: str) -> str:
        """The logical id of the one role whose logical id starts with `prefix`."""
        found = [name for name in self.roles() if name.startswith(prefix)]
        if len(found) != 1:
            raise ValueError(f"expected one IAM role with logical id {prefix}*, found {found}")
        return found[0]

    def instance_role(self, instance_name: str) -> str:
        """The logical id of the role an EC2 instance (by its Name tag) runs as, through its instance profile."""
        for resource in self.resources.values():
            properties = resource.get("Properties", {})
            tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", []) if isinstance(tag.get("Value"), str)}
            if resource["Type"] == "AWS::EC2::Instance" and tags.get("Name") == instance_name:
                profile = self.resources[properties["IamInstanceProfile"]["Ref"]]
                (role,) = profile["Properties"]["Roles"]
                return role["Ref"]
        raise ValueError(f"the template has no EC2 instance named {instance_name!r}")

    def principal(self, role: str) -> Principal:
        properties = self.resources[role].get("Properties", {})
        policies = [
            PolicyDocument(f"{role}/{inline['PolicyName']}", self._render(inline["PolicyDocument"]))
            for inline in properties.get("Policies", [])
        ]
        for arn in (self._render(a) for a in properties.get("ManagedPolicyArns", [])):
            policies.append(self._customer_managed(arn) or load_managed_policy(arn))
        for name, resource in self.resources.items():
            attached = resource.get("Properties", {}).get("Roles", [])
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {"Ref": role} in attached:
                policies.append(PolicyDocument(name, self._render(resource["Properties"]["PolicyDocument"])))
        return Principal(role, tuple(policies), self._render(properties.get("AssumeRolePolicyDocument")))

    def _customer_managed(self, arn: str) -> PolicyDocument | None:
        for name, resource in self.resources.items():
            if resource["Type"] == "AWS::IAM::ManagedPolicy" and self.values.ref(name) == arn:
                return PolicyDocument(name, self._render(resource["Properties"]["PolicyDocument"]))
        return None

    def documents(self) -> list[tuple[str, Mapping[str, Any], bool]]:
        """(name, document, is_trust_policy) of every policy the template defines: inline, customer managed, trust."""
        found = []
        for name, resource in self.resources.items():
            properties = resource.get("Properties", {})
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                found.append((name, self._render(properties["PolicyDocument"]), False))
            if resource["Type"] == "AWS::IAM::Role":
                found.append((f"{name} (trust policy)", self._render(properties["AssumeRolePolicyDocument"]), True))
                found += [
                    (f"{name}/{p['PolicyName']}", self._render(p["PolicyDocument"]), False)
                    for p in properties.get("Policies", [])
                ]
        return found
