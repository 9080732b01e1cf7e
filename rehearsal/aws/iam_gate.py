"""IAM in front of the emulator: each API call is authorised for the principal whose key signed it.

moto's own IAM enforcement ignores conditions, resource types and AWS managed policies, so the
decision is made by `rehearsal.aws.iam_policy.evaluate` against the synthesized template's roles.
This module only turns an HTTP request into the IAM requests AWS would authorise for it:
the operation comes from the request's protocol (X-Amz-Target for JSON services, the `Action`
parameter for Query services, method + path + sub-resource for S3's REST API), the IAM action is
`<service prefix>:<operation>` checked against parliament's IAM database, and the resource ARN and
condition keys come from the request's parameters and moto's state (cluster tags, secret ARNs,
instance profiles). A call that cannot be mapped is denied, never waved through.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

from rehearsal.aws.iam_policy import Principal, Request, evaluate, resource_type_of

log = logging.getLogger("rehearsal.iam")

EMR_SERVICE = "elasticmapreduce.amazonaws.com"
EC2_SERVICE = "ec2.amazonaws.com"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
# Signing name (credential scope) -> IAM service prefix, for the services the rehearsal emulates.
_IAM_PREFIX = {
    "elasticmapreduce": "elasticmapreduce",
    "s3": "s3",
    "ses": "ses",
    "secretsmanager": "secretsmanager",
    "sts": "sts",
    "logs": "logs",
    "iam": "iam",
    "ec2": "ec2",
}
# AWS answers these for any valid credentials, whatever the policies say (STS API reference).
_ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}
# The rehearsal's own response header carrying an S3 denial's message (HEAD responses have no body).
DENIAL_HEADER = "x-rehearsal-iam-denial"


@dataclass(frozen=True)
class Caller:
    """A principal the emulator knows by access key id; `principal` None means unrestricted (the rehearsal itself)."""

    arn: str
    principal: Principal | None


@dataclass(frozen=True)
class Call:
    """One signed HTTP request, as far as authorisation needs it."""

    access_key: str
    region: str
    signing_name: str
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Denial:
    principal: str
    action: str
    resource: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"principal": self.principal, "action": self.action, "resource": self.resource, "message": self.message}


class Unmappable(Exception):
    """The rehearsal cannot tell which IAM requests AWS would authorise for this call."""


class EmulatorState:
    """What authorisation reads from moto's backends (cluster tags, instance profiles, secret ARNs)."""

    def __init__(self, account_id: str, clusters: Callable[[], list[Any]]):
        self.account_id = account_id
        self._clusters = clusters

    def cluster_tags(self, cluster_id: str) -> dict[str, str] | None:
        for cluster in self._clusters():
            if cluster.id == cluster_id:
                tags = cluster.tags  # moto renders them as [{"Key": ..., "Value": ...}]
                return {tag["Key"]: tag["Value"] for tag in tags}
        return None

    def instance_profile_roles(self, name: str) -> list[str]:
        from moto.iam.models import iam_backends

        backend = iam_backends[self.account_id]["global"]
        try:
            profile = backend.get_instance_profile(name)
        except Exception as exc:  # moto raises IAMNotFoundException
            raise Unmappable(f"instance profile {name} does not exist in the emulator") from exc
        return [role.name for role in profile.roles]

    def secret_arn(self, region: str, secret_id: str) -> str:
        from moto.secretsmanager.models import secretsmanager_backends

        secret = secretsmanager_backends[self.account_id][region].secrets.get(secret_id)
        if secret is None:
            if secret_id.startswith("arn:"):
                return secret_id
            raise Unmappable(f"secret {secret_id} does not exist in the emulator, so its ARN is unknown")
        return secret.arn


# ---------------------------------------------------------------------------------------------
# HTTP request -> (operation, IAM requests)


def parse_call(environ: dict[str, Any]) -> Call:
    """The call's signature facts (access key "" when the request is not signed with SigV4)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    match = _CREDENTIAL.search(authorization) or _CREDENTIAL.search(
        "Credential=" + query.get("X-Amz-Credential", [""])[0]
    )
    access_key, region, signing_name = match.groups() if match else ("", "", "")
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    body = b""
    if signing_name != "s3" or (environ["REQUEST_METHOD"] == "POST" and "delete" in query):
        # JSON / Query bodies are small; read them and hand moto an identical stream.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
    return Call(
        access_key=access_key,
        region=region,
        signing_name=signing_name,
        method=environ["REQUEST_METHOD"],
        path=unquote(environ.get("PATH_INFO", "")),
        query=query,
        headers=headers,
        body=body,
    )


def operation_of(call: Call) -> str:
    """The API operation: X-Amz-Target (JSON), Action (Query) or method + path for S3 (REST)."""
    if call.signing_name == "s3":
        return _s3_operation(call)
    target = call.headers.get("x-amz-target")
    if target:
        return target.rpartition(".")[2]
    params = parse_qs(call.body.decode("utf-8", "replace")) if call.body else {}
    action = (params.get("Action") or call.query.get("Action") or [""])[0]
    if not action:
        raise Unmappable(f"rehearsal cannot tell the operation of a {call.signing_name} {call.method} {call.path} call")
    return action


def _json_params(call: Call) -> dict[str, Any]:
    return json.loads(call.body or b"{}")


def _query_params(call: Call) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(call.body.decode("utf-8", "replace")).items()}


def _s3_target(call: Call) -> tuple[str, str]:
    bucket, _, key = call.path.lstrip("/").partition("/")
    return bucket, key


_S3_OBJECT_SUBRESOURCES = {"tagging", "acl", "retention", "legal-hold", "attributes", "restore", "torrent", "select"}
_S3_BUCKET_SUBRESOURCES = {
    "location",
    "versions",
    "uploads",
    "delete",
    "policy",
    "acl",
    "cors",
    "lifecycle",
    "tagging",
    "versioning",
    "encryption",
    "logging",
    "notification",
    "website",
    "replication",
    "ownershipControls",
    "publicAccessBlock",
    "object-lock",
    "accelerate",
    "requestPayment",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
}


def _s3_operation(call: Call) -> str:
    bucket, key = _s3_target(call)
    query, method = call.query, call.method
    if not bucket:
        if method == "GET":
            return "ListBuckets"
        raise Unmappable(f"rehearsal cannot map s3.{method} / to an IAM action")
    if key:
        sub = sorted(set(query) & _S3_OBJECT_SUBRESOURCES)
        if sub:
            raise Unmappable(f"rehearsal cannot map s3.{method} ?{sub[0]} on an object to an IAM action")
        if method in ("GET", "HEAD"):
            if "uploadId" in query:
                return "ListParts"
            return "GetObject" if method == "GET" else "HeadObject"
        if method == "PUT":
            copy = "x-amz-copy-source" in call.headers
            if "uploadId" in query:
                return "UploadPartCopy" if copy else "UploadPart"
            return "CopyObject" if copy else "PutObject"
        if method == "POST":
            if "uploads" in query:
                return "CreateMultipartUpload"
            if "uploadId" in query:
                return "CompleteMultipartUpload"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        raise Unmappable(f"rehearsal cannot map s3.{method} on an object to an IAM action")
    sub = sorted(set(query) & _S3_BUCKET_SUBRESOURCES)
    bucket_operations = {
        ("GET", None): "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects",
        ("HEAD", None): "HeadBucket",
        ("PUT", None): "CreateBucket",
        ("DELETE", None): "DeleteBucket",
        ("GET", "location"): "GetBucketLocation",
        ("GET", "versions"): "ListObjectVersions",
        ("GET", "uploads"): "ListMultipartUploads",
        ("POST", "delete"): "DeleteObjects",
    }
    found = bucket_operations.get((method, sub[0] if len(sub) == 1 else None if not sub else "+".join(sub)))
    if found is None:
        raise Unmappable(
            f"rehearsal cannot map s3.{method} {'?' + ','.join(sub) if sub else ''} on a bucket to an IAM action"
        )
    return found


def _s3_requests(call: Call, operation: str) -> list[Request]:
    bucket, key = _s3_target(call)
    copy_source = call.headers.get("x-amz-copy-source")
    return s3_requests(
        operation,
        bucket,
        key,
        prefix=call.query["prefix"][0] if "prefix" in call.query else None,
        copy_source=unquote(copy_source).lstrip("/").split("?", 1)[0] if copy_source else None,
        deleted_keys=_deleted_keys(call.body) if operation == "DeleteObjects" else (),
    )


def s3_requests(
    operation: str,
    bucket: str,
    key: str = "",
    *,
    prefix: str | None = None,
    copy_source: str | None = None,
    deleted_keys: Sequence[str] = (),
) -> list[Request]:
    """The IAM requests S3 authorises for one API operation (the home of this mapping; emrfs.py uses it too)."""
    bucket_arn = f"arn:aws:s3:::{bucket}"
    object_arn = f"{bucket_arn}/{key}"

    def listing(action: str) -> Request:
        return Request(action, bucket_arn, {"s3:prefix": prefix} if prefix is not None else {})

    def source_object() -> Request:
        return Request("s3:GetObject", f"arn:aws:s3:::{copy_source}")

    # The permission each operation needs, per the S3 API reference's "Permissions" sections.
    by_operation: dict[str, Callable[[], list[Request]]] = {
        "ListBuckets": lambda: [Request("s3:ListAllMyBuckets", "*")],
        "GetObject": lambda: [Request("s3:GetObject", object_arn)],
        "HeadObject": lambda: [Request("s3:GetObject", object_arn)],
        "PutObject": lambda: [Request("s3:PutObject", object_arn)],
        "CreateMultipartUpload": lambda: [Request("s3:PutObject", object_arn)],
        "UploadPart": lambda: [Request("s3:PutObject", object_arn)],
        "CompleteMultipartUpload": lambda: [Request("s3:PutObject", object_arn)],
        "CopyObject": lambda: [Request("s3:PutObject", object_arn), source_object()],
        "UploadPartCopy": lambda: [Request("s3:PutObject", object_arn), source_object()],
        "ListParts": lambda: [Request("s3:ListMultipartUploadParts", object_arn)],
        "AbortMultipartUpload": lambda: [Request("s3:AbortMultipartUpload", object_arn)],
        "DeleteObject": lambda: [Request("s3:DeleteObject", object_arn)],
        "ListObjects": lambda: [listing("s3:ListBucket")],
        "ListObjectsV2": lambda: [listing("s3:ListBucket")],
        "HeadBucket": lambda: [Request("s3:ListBucket", bucket_arn)],
        "ListObjectVersions": lambda: [listing("s3:ListBucketVersions")],
        "ListMultipartUploads": lambda: [Request("s3:ListBucketMultipartUploads", bucket_arn)],
        "GetBucketLocation": lambda: [Request("s3:GetBucketLocation", bucket_arn)],
        "CreateBucket": lambda: [Request("s3:CreateBucket", bucket_arn)],
        "DeleteBucket": lambda: [Request("s3:DeleteBucket", bucket_arn)],
        "DeleteObjects": lambda: [Request("s3:DeleteObject", f"{bucket_arn}/{k}") for k in deleted_keys],
    }
    return by_operation[operation]()


def _deleted_keys(body: bytes) -> list[str]:
    root = ElementTree.fromstring(body)
    return [element.text or "" for element in root.iter() if element.tag.rpartition("}")[2] == "Key"]


def _tag_context(tags: Mapping[str, str], kind: str) -> dict[str, Any]:
    context: dict[str, Any] = {f"aws:{kind}/{key}": value for key, value in tags.items()}
    if kind == "RequestTag":
        context["aws:TagKeys"] = list(tags)
    return context


class RequestMapper:
    """HTTP call -> the IAM requests AWS authorises for it (all must be allowed)."""

    def __init__(self, state: EmulatorState):
        self.state = state

    def requests(self, call: Call, operation: str) -> list[Request]:
        if call.signing_name == "s3":
            return _s3_requests(call, operation)
        prefix = _IAM_PREFIX.get(call.signing_name)
        if prefix is None:
            raise Unmappable(
                f"rehearsal cannot map {call.signing_name}.{operation} to an IAM action (service not mapped)"
            )
        action = f"{prefix}:{operation}"
        special = {
            "elasticmapreduce:RunJobFlow": self._run_job_flow,
            "ses:SendEmail": self._ses_send,
            "ses:SendRawEmail": self._ses_send,
        }
        if action in special:
            return special[action](call, action)
        if prefix == "elasticmapreduce":
            cluster_requests = self._emr_cluster(call, action)
            if cluster_requests is not None:
                return cluster_requests
        if prefix == "secretsmanager":
            secret_id = _json_params(call).get("SecretId")
            if secret_id:
                return [Request(action, self.state.secret_arn(call.region, secret_id))]
        try:
            resource_type_of(action, "*")
        except ValueError as exc:
            raise Unmappable(
                f"rehearsal cannot map {call.signing_name}.{operation} to an IAM action and resource: {exc}"
            ) from exc
        return [Request(action, "*")]

    def _run_job_flow(self, call: Call, action: str) -> list[Request]:
        params = _json_params(call)
        tags = {tag["Key"]: tag.get("Value", "") for tag in params.get("Tags", [])}
        found = [Request(action, "*", _tag_context(tags, "RequestTag"))]
        account = self.state.account_id
        if params.get("ServiceRole"):
            role = params["ServiceRole"]
            arn = role if role.startswith("arn:") else f"arn:aws:iam::{account}:role/{role}"
            found.append(Request("iam:PassRole", arn, {"iam:PassedToService": EMR_SERVICE}))
        if params.get("JobFlowRole"):
            profile = params["JobFlowRole"].rpartition("/")[2]
            for role in self.state.instance_profile_roles(profile):
                found.append(
                    Request("iam:PassRole", f"arn:aws:iam::{account}:role/{role}", {"iam:PassedToService": EC2_SERVICE})
                )
        return found

    def _emr_cluster(self, call: Call, action: str) -> list[Request] | None:
        params = _json_params(call)
        ids = params.get("JobFlowIds") or [params[k] for k in ("ClusterId", "JobFlowId", "ResourceId") if k in params]
        if not ids:
            return None
        found = []
        for cluster_id in ids:
            arn = f"arn:aws:elasticmapreduce:{call.region}:{self.state.account_id}:cluster/{cluster_id}"
            tags = self.state.cluster_tags(cluster_id) or {}
            found.append(Request(action, arn, _tag_context(tags, "ResourceTag")))
        return found

    def _ses_send(self, call: Call, action: str) -> list[Request]:
        params = _query_params(call)
        source = params.get("Source")
        if not source and action == "ses:SendRawEmail":
            raise Unmappable("rehearsal cannot map ses.SendRawEmail without Source to the sending identity")
        address = parseaddr(source or "")[1]
        if not address:
            raise Unmappable(f"rehearsal cannot map {action} to a sending identity: Source {source!r}")
        return [Request(action, f"arn:aws:ses:{call.region}:{self.state.account_id}:identity/{address}")]


# ---------------------------------------------------------------------------------------------
# The gate


def denial_message(caller_arn: str, request: Request, reason: str) -> str:
    """AWS's shape of an implicit / explicit identity-based denial."""
    if "explicitly denied" in reason:
        return (
            f"User: {caller_arn} is not authorized to perform: {request.action} on resource: {request.resource} "
            f"with an explicit deny in an identity-based policy"
        )
    return (
        f"User: {caller_arn} is not authorized to perform: {request.action} on resource: {request.resource} "
        f"because no identity-based policy allows the {request.action} action"
    )


class IamGate:
    """Authorises every signed call against its caller's policies; counts calls and records denials."""

    def __init__(self, callers: Mapping[str, Caller], mapper: RequestMapper):
        self.callers = dict(callers)
        self.mapper = mapper
        self._lock = threading.Lock()
        self._calls = 0
        self._denied: list[Denial] = []

    def check(self, call: Call) -> Denial | None:
        """None when AWS would let the call through; else the denial (recorded and logged)."""
        caller = self.callers.get(call.access_key)
        if caller is None:
            problem = f"unknown access key {call.access_key}" if call.access_key else "the request is not signed"
            return self._deny(
                call.access_key or "anonymous",
                "",
                "",
                f"The security token included in the request is invalid ({problem})",
            )
        if caller.principal is None:
            return None
        with self._lock:
            self._calls += 1
        operation = "?"
        try:
            operation = operation_of(call)
            requests = self.mapper.requests(call, operation)
        except Unmappable as exc:
            return self._deny(caller.arn, f"{call.signing_name}.{operation}", "", str(exc))
        for request in requests:
            if request.action in _ALWAYS_ALLOWED:
                continue
            try:
                decision = evaluate(caller.principal, request)
            except ValueError as exc:
                return self._deny(
                    caller.arn, request.action, request.resource, f"rehearsal cannot evaluate {request.action}: {exc}"
                )
            if not decision:
                return self._deny(
                    caller.arn, request.action, request.resource, denial_message(caller.arn, request, decision.reason)
                )
        return None

    def _deny(self, principal: str, action: str, resource: str, message: str) -> Denial:
        denial = Denial(principal, action, resource, message)
        with self._lock:
            self._denied.append(denial)
        log.warning("rehearsal: IAM denied %s %s on %s: %s", principal, action or "-", resource or "-", message)
        return denial

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": self._calls, "denied": [denial.as_dict() for denial in self._denied]}


def denial_response(call: Call, denial: Denial) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) as the call's protocol returns AccessDenied."""
    unknown_key = not denial.action and "security token" in denial.message
    if call.signing_name == "s3":
        code = "InvalidAccessKeyId" if unknown_key else "AccessDenied"
        body = (
            b""
            if call.method == "HEAD"
            else (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{_xml(denial.message)}</Message><RequestId>rehearsal</RequestId><HostId>rehearsal</HostId></Error>"
            ).encode()
        )
        # A HEAD response has no body, so AWS's answer names nothing; the rehearsal adds the denial in a
        # header of its own so that its EMRFS (emrfs.py) can name principal, action and resource.
        return 403, {"Content-Type": "application/xml", DENIAL_HEADER: denial.message}, body
    if call.headers.get("x-amz-target"):
        # JSON protocol: botocore reads the error code from __type (AWS Common Errors: HTTP 400).
        code = "UnrecognizedClientException" if unknown_key else "AccessDeniedException"
        body = json.dumps({"__type": code, "message": denial.message}).encode()
        return 400, {"Content-Type": "application/x-amz-json-1.1"}, body
    code = "InvalidClientTokenId" if unknown_key else "AccessDenied"
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(denial.message)}</Message>"
        f"</Error><RequestId>rehearsal</RequestId></ErrorResponse>"
    ).encode()
    return 403, {"Content-Type": "text/xml"}, body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
