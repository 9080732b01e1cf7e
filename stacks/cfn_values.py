"""CloudFormation values of a synthesized template, rendered to strings.

The one renderer for the intrinsics aws-cdk-lib emits in this stack (Ref, Fn::GetAtt, Fn::Join and the
string form of Fn::Sub), used by the stack (cdk-nag's finding ids), the rehearsal and the tests. Callers
decide what a reference becomes: a placeholder such as <Logical.Attr> (cdk-nag's notation, the
infrastructure tests), or a concrete example or emulated value (rehearsal/aws/example_values.py), so IAM
tools that only read ARNs can see the stack's real ARN shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Ref = Callable[[str], str]
GetAtt = Callable[[str, str], str]
# ${Name} or ${Name.Attr} in Fn::Sub's string; ${!Literal} is an escaped, literal ${Literal}.
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


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

            return _SUB_VARIABLE.sub(substitute, argument)
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


def references(value: Any) -> set[str]:
    """Every name a template value points at: Ref, Fn::GetAtt and Fn::Sub's ${Name} / ${Name.Attr}
    (pseudo parameters such as AWS::Region included), anywhere in the tree."""
    found: set[str] = set()
    if isinstance(value, dict):
        for function, argument in value.items():
            if function == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif function == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else argument.split(".", 1)[0])
            elif function == "Fn::Sub":
                text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
                found.update(name.split(".", 1)[0] for name in _SUB_VARIABLE.findall(text))
                found |= references(variables)
            else:
                found |= references(argument)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found
