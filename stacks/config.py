"""Deployment configuration: CDK context parsed and validated into one frozen dataclass.

Every bad value is reported together, with the parameter name, so `cdk synth` fails before
anything is written or deployed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = REPO_ROOT / "cdk.json"

STAGES = ("dev", "prod")
EXECUTORS = ("CeleryExecutor", "LocalExecutor")
SCHEDULER_COUNTS = (1, 2)

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_EC2_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_RELEASE = re.compile(r"^emr-\d+\.\d+\.\d+$")
_HIVE_DB = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# Domains reserved for documentation and testing (RFC 2606, RFC 6761): no mailbox there can verify an
# SES identity or receive the outcome mail.
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org")
PLACEHOLDER_TLDS = ("example", "test", "invalid", "localhost")
# The EMR steps read the uploaded dataset as CSV; its S3 key (stacks/s3_layout.INPUT_KEY) ends in it, too.
DATASET_SUFFIX = ".csv"


class ConfigError(ValueError):
    """Raised with every invalid context parameter listed, one per line."""


@dataclass(frozen=True, kw_only=True)
class DeploymentConfig:
    region: str
    stage: str
    nat_gateways: int
    api_server_instance_type: str
    scheduler_instance_type: str
    worker_instance_type: str
    db_instance_type: str
    cache_node_type: str
    sender_email: str
    alert_email: str
    allowed_ui_cidr: str | None
    scheduler_count: int
    api_server_workers: int
    executor: str
    input_uri: str | None
    output_uri: str | None
    dataset_path: Path
    emr_release_label: str
    emr_primary_instance_type: str
    emr_core_instance_type: str
    emr_core_instance_count: int
    emr_idle_timeout_seconds: int
    hive_database: str
    # SES identities (e-mail addresses or domains) already in the account and region: reused, not created.
    existing_ses_identities: tuple[str, ...]
    # Set by `make deploy`: the configuration must then be deliverable, not only well-formed.
    deploying: bool

    @property
    def is_prod(self) -> bool:
        return self.stage == "prod"

    @property
    def uses_celery(self) -> bool:
        return self.executor == "CeleryExecutor"

    @property
    def stack_name(self) -> str:
        return f"AirflowEmr-{self.stage}"


# Parameters a deployment may leave unset; they default to None and are absent from cdk.json (the UI, in
# particular, must not be opened to any network by default).
OPTIONAL = ("allowed_ui_cidr", "input_uri", "output_uri")


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """cdk.json's context: the deployment parameters' defaults and aws-cdk-lib's feature flags."""
    return json.loads(path.read_text())["context"]


def load_defaults(path: Path = CDK_JSON) -> dict[str, Any]:
    """Every parameter's default: its value in cdk.json's context (where CDK users look for and change
    settings), None for the OPTIONAL ones. cdk.json is their only home; nothing here restates them."""
    context = cdk_json_context(path)
    names = [field.name for field in fields(DeploymentConfig)]
    missing = [name for name in names if name not in OPTIONAL and name not in context]
    if missing:
        raise ConfigError(
            f"{path} has no context value for {', '.join(missing)}; every parameter needs a default there"
        )
    preset = [name for name in OPTIONAL if name in context]
    if preset:
        raise ConfigError(f"{path} sets {', '.join(preset)}, which must stay unset by default (pass them with -c)")
    return {name: context.get(name) for name in names}


DEFAULTS: dict[str, Any] = load_defaults()
DEFAULT_DATASET: str = DEFAULTS["dataset_path"]


def _as_int(value: Any) -> int:
    # Context given on the command line (-c key=2) arrives as a string.
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _optional(value: Any) -> Any:
    return None if value in (None, "", "null", "none", "None") else value


def _choice(allowed: tuple) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        coerced = _as_int(value) if isinstance(allowed[0], int) else value
        if coerced not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(map(str, allowed))}")
        return coerced

    return check


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        number = _as_int(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {low}..{high}")
        return number

    return check


def _matching(pattern: re.Pattern, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return check


def _ui_cidr(value: Any) -> str | None:
    value = _optional(value)
    if value is None:
        return None
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a CIDR block ({error})") from None
    if network.version != 4:
        raise ValueError(f"{value!r} is IPv6; the VPC is IPv4-only")
    if network.prefixlen < 8:
        raise ValueError(
            f"{value!r} opens the UI to (nearly) the whole internet; use a /8 or narrower range, or leave it unset and use SSM port forwarding"
        )
    return str(network)


def _s3_uri(*, prefix: bool) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        value = _optional(value)
        if value is None:
            return None
        match = _S3_URI.fullmatch(str(value))
        if not match:
            raise ValueError(f"{value!r} is not an s3://bucket/key URI")
        bucket, key = match.groups()
        if prefix:
            if not key.strip("/"):
                raise ValueError(f"{value!r} is a bucket root; use a prefix such as s3://{bucket}/output/customers/")
            return value if value.endswith("/") else value + "/"
        if value.endswith("/"):
            raise ValueError(f"{value!r} names a prefix; it must name the CSV object")
        if "/" not in key:
            # The input's grants are scoped to its prefix, which would be the whole bucket.
            raise ValueError(f"{value!r} is at the bucket root; put the CSV under a prefix such as s3://{bucket}/data/")
        return value

    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


def _ses_identities(value: Any) -> tuple[str, ...]:
    """A comma-separated list of e-mail addresses and domains."""
    if isinstance(value, (list, tuple)):
        items = [str(item).strip() for item in value]
    else:
        items = [item.strip() for item in str(_optional(value) or "").split(",")]
    items = [item for item in items if item]
    for item in items:
        if not (_EMAIL.fullmatch(item) or _DOMAIN.fullmatch(item)):
            raise ValueError(f"{item!r} is neither an e-mail address nor a domain")
    return tuple(dict.fromkeys(items))


def is_placeholder_address(address: str) -> bool:
    domain = address.rpartition("@")[2].lower()
    return (
        domain in PLACEHOLDER_DOMAINS
        or any(domain.endswith("." + placeholder) for placeholder in PLACEHOLDER_DOMAINS)
        or domain.rpartition(".")[2] in PLACEHOLDER_TLDS
    )


def existing_identity_for(address: str, existing: tuple[str, ...]) -> str | None:
    """The already verified identity that covers `address`: the address itself or its domain."""
    domain = address.rpartition("@")[2].lower()
    for identity in existing:
        if identity.lower() == address.lower() or identity.lower() == domain:
            return identity
    return None


def _dataset(value: Any) -> Path:
    path = Path(str(value))
    path = path if path.is_absolute() else REPO_ROOT / path
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if path.suffix.lower() != DATASET_SUFFIX:
        raise ValueError(f"{path} is not a {DATASET_SUFFIX} file")
    return path


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "region": _matching(_REGION, "an AWS region name such as us-west-2"),
    "stage": _choice(STAGES),
    "nat_gateways": _int_range(1, 2),
    "api_server_instance_type": _matching(_EC2_TYPE, "an EC2 instance type such as t3.medium"),
    "scheduler_instance_type": _matching(_EC2_TYPE, "an EC2 instance type such as t3.medium"),
    "worker_instance_type": _matching(_EC2_TYPE, "an EC2 instance type such as t3.large"),
    "db_instance_type": _matching(_EC2_TYPE, "an RDS instance class without the db. prefix, such as t4g.micro"),
    "cache_node_type": _matching(
        re.compile(r"^cache\.[a-z0-9]+\.[a-z0-9]+$"), "an ElastiCache node type such as cache.t4g.micro"
    ),
    "sender_email": _matching(_EMAIL, "an e-mail address"),
    "alert_email": _matching(_EMAIL, "an e-mail address"),
    "allowed_ui_cidr": _ui_cidr,
    "scheduler_count": _choice(SCHEDULER_COUNTS),
    "api_server_workers": _int_range(1, 16),
    "executor": _choice(EXECUTORS),
    "input_uri": _s3_uri(prefix=False),
    "output_uri": _s3_uri(prefix=True),
    "dataset_path": _dataset,
    "emr_release_label": _matching(_RELEASE, "an EMR release label such as emr-7.10.0"),
    "emr_primary_instance_type": _matching(_EC2_TYPE, "an EC2 instance type such as m5.xlarge"),
    "emr_core_instance_type": _matching(_EC2_TYPE, "an EC2 instance type such as m5.xlarge"),
    "emr_core_instance_count": _int_range(0, 20),
    "emr_idle_timeout_seconds": _int_range(60, 7 * 24 * 3600),
    "hive_database": _matching(_HIVE_DB, "a lower-case Hive database name"),
    "existing_ses_identities": _ses_identities,
    "deploying": _bool,
}


def parse_config(context: Mapping[str, Any]) -> DeploymentConfig:
    """Build the configuration from context values (missing keys take DEFAULTS, i.e. cdk.json's)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in fields(DeploymentConfig):
        raw = context.get(field.name, DEFAULTS[field.name])
        try:
            values[field.name] = _PARSERS[field.name](raw)
        except ValueError as error:
            problems.append(f"context parameter {field.name!r}: {error}")
    if not problems and values["executor"] == "LocalExecutor" and values["scheduler_count"] != 1:
        problems.append(
            "context parameter 'scheduler_count': LocalExecutor runs tasks inside one scheduler; use scheduler_count=1"
        )
    if not problems:
        problems += _mail_problems(values)
    if problems:
        raise ConfigError("invalid deployment configuration:\n  " + "\n  ".join(problems))
    return DeploymentConfig(**values)


def _mail_problems(values: Mapping[str, Any]) -> list[str]:
    problems = []
    addresses = {"sender_email": values["sender_email"], "alert_email": values["alert_email"]}
    for identity in values["existing_ses_identities"]:
        if not any(existing_identity_for(address, (identity,)) for address in addresses.values()):
            problems.append(
                f"context parameter 'existing_ses_identities': {identity!r} covers neither sender_email nor alert_email"
            )
    if values["deploying"]:
        for key, address in addresses.items():
            if is_placeholder_address(address):
                problems.append(
                    f"context parameter {key!r}: {address!r} is a placeholder that SES cannot verify and no one receives; "
                    f"deploy with your own address: -c {key}=you@your-domain"
                )
    return problems


def context_keys() -> tuple[str, ...]:
    return tuple(DEFAULTS)
