"""parliament (duo-labs' IAM policy linter) over policy documents, and its IAM action database.

parliament 1.6.4 still imports `pkg_resources` only to locate its two data files
(duo-labs/parliament#247), and setuptools removed `pkg_resources` in 82.0. Rather than pinning a
setuptools that predates that (and a security fix), a module offering exactly the one function
parliament calls is registered before the import when the real one is missing.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import json
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# parliament's issue types that mean "AWS would not do what this policy says" (the others are style).
BLOCKING_ISSUES = frozenset(
    {
        "MALFORMED",
        "MALFORMED_JSON",
        "EXCEPTION",
        "UNKNOWN_PRINCIPAL",
        "UNKNOWN_ACTION",
        "UNKNOWN_PREFIX",
        "UNKNOWN_CONDITION_FOR_ACTION",
        "UNKNOWN_OPERATOR",
        "MISMATCHED_TYPE",
        "MISMATCHED_TYPE_OPERATION_TO_NULL",
        "INVALID_ARN",
        "RESOURCE_MISMATCH",
        "NO_VERSION",
        "INVALID_VERSION",
        "DUPLICATE_SID",
        "INVALID_SID",
    }
)


@functools.cache
def _parliament():
    if importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)
        sys.modules["pkg_resources"] = shim
    import parliament

    return parliament


def iam_definition() -> list[dict]:
    """parliament's IAM database: one entry per service with privileges, resources, conditions."""
    return _parliament().iam_definition


@dataclass(frozen=True)
class Finding:
    policy: str
    issue: str
    detail: Any
    document: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def __str__(self) -> str:
        return f"{self.policy}: {self.issue} {self.detail}"


def lint(documents: Iterable[tuple[str, Mapping[str, Any], bool]]) -> list[Finding]:
    """parliament's findings for each (name, policy document, is_trust_policy), community auditors included.

    parliament reads every document as an identity policy; for a role's trust policy it still checks
    the Principal, Action and Condition elements, and its one complaint that cannot apply (no Resource,
    which a trust policy must not have) is dropped.
    """
    parliament = _parliament()
    findings = []
    for name, document, is_trust_policy in documents:
        policy = parliament.analyze_policy_string(json.dumps(document), include_community_auditors=True)
        for finding in policy.findings:
            if (
                is_trust_policy
                and finding.issue == "MALFORMED"
                and "neither Resource nor NotResource" in str(finding.detail)
            ):
                continue
            findings.append(Finding(name, finding.issue, finding.detail, document))
    return findings


def _named_actions(document: Mapping[str, Any]) -> set[str]:
    statements = document.get("Statement", [])
    actions = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        named = statement.get("Action", [])
        actions |= {a.lower() for a in (named if isinstance(named, list) else [named]) if "*" not in a}
    return actions


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that mean AWS would not grant what the policy says.

    A RESOURCE_MISMATCH counts for actions the policy names; parliament also lists every action a
    wildcard such as s3:List* expands to, and those that do not fit the resource are simply not granted.
    """
    found = []
    for finding in findings:
        if finding.issue == "RESOURCE_MISMATCH":
            named = _named_actions(finding.document)
            mismatched = [entry for entry in finding.detail if entry["action"].lower() in named]
            if mismatched:
                found.append(Finding(finding.policy, finding.issue, mismatched, finding.document))
        elif finding.issue in BLOCKING_ISSUES:
            found.append(finding)
    return found
