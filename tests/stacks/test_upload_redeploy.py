"""Redeploying the repo uploads, run by aws-cdk-lib's own BucketDeployment handler against emulated S3.

The handler (`index.py`, shipped inside aws-cdk-lib) and the AWS CLI it calls (the `awscli` Lambda
layer shipped in aws-cdk.asset-awscli-v1) are extracted from the installed packages and run as the
Lambda would run them, with the synthesized template's properties (Prune, prefix, source key) and the
staged assets zipped as cdk-assets publishes them. CloudFormation's side (the Create/Update events and
the pre-signed response URL) is played by the test; S3 is moto.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import tarfile
import types
import urllib.request
import zipfile
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from stacks.cfn_values import render
from stacks.config import REPO_ROOT

from .infra_support import node_env, parse_env

HANDLER_MEMBER = "package/custom-resource-handlers/dist/aws-s3-deployment/bucket-deployment-handler/index.py"
LAYER_MEMBER = "package/lib/layer.zip"
LAMBDA_CLI = "/opt/awscli/aws"  # where the layer puts the CLI on Lambda; the handler hard-codes it
ACCOUNT = "123456789012"
RESPONSES_BUCKET = "cfn-responses"


def _jsii_member(package: str, member: str, target: Path) -> Path:
    """A file from the npm package a jsii Python package carries (its `_jsii/*.jsii.tgz`)."""
    tarball = next(Path(importlib.util.find_spec(f"{package}._jsii").origin).parent.glob("*.jsii.tgz"))
    with tarfile.open(tarball) as archive:
        target.write_bytes(archive.extractfile(member).read())
    return target


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def s3_endpoint(monkeypatch, tmp_path):
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto's backends are process-wide: start every test from empty buckets.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_CONFIG_FILE": str(tmp_path / "aws_cli_config"),
        "TMPDIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory) -> tuple[Path, Path]:
    """The handler's source and the extracted awscli layer, once per module: both are read-only here, and
    unpacking the layer out of aws-cdk.asset-awscli-v1 is most of a test's setup time."""
    root = tmp_path_factory.mktemp("bucket-deployment")
    source = _jsii_member("aws_cdk", HANDLER_MEMBER, root / "bucket_deployment_handler.py")
    layer = root / "opt"
    with zipfile.ZipFile(_jsii_member("aws_cdk.asset_awscli_v1", LAYER_MEMBER, root / "layer.zip")) as archive:
        archive.extractall(layer)
    return source, layer


@pytest.fixture()
def handler(s3_endpoint, lambda_files, tmp_path, monkeypatch):
    """The BucketDeployment Lambda's module (loaded afresh per test), its `aws` calls going to the layer's CLI."""
    source, layer = lambda_files
    spec = importlib.util.spec_from_file_location("bucket_deployment_handler", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "AWS_CLI_CONFIG_FILE", str(tmp_path / "aws_cli_config"))

    import subprocess

    def check_call(command, **kwargs):
        assert command[0] == LAMBDA_CLI, command
        return subprocess.check_call([sys.executable, str(layer / "awscli" / "aws"), *command[1:]], **kwargs)

    monkeypatch.setattr(module, "subprocess", types.SimpleNamespace(check_call=check_call))
    return module


class Deployer:
    """Plays CloudFormation for the template's Custom::CDKBucketDeployment resources."""

    def __init__(self, assembly, handler):
        self.template = assembly.template
        self.outdir = assembly.outdir
        self.manifest = json.loads((assembly.outdir / f"{assembly.stack_name}.assets.json").read_text())["files"]
        self.handler = handler
        self.s3 = boto3.client("s3")
        self.buckets: set[str] = set()
        self._bucket(RESPONSES_BUCKET)

    def _bucket(self, name: str) -> str:
        if name not in self.buckets:
            self.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
            self.buckets.add(name)
        return name

    def _resolve(self, value):
        if isinstance(value, bool):  # CloudFormation hands custom resources every scalar as a string
            return str(value).lower()
        return render(value, ref=self._ref, get_att=self._get_att)

    @staticmethod
    def _ref(name: str) -> str:
        if name == "AWS::AccountId":
            return ACCOUNT
        if name.startswith("AWS::"):
            raise AssertionError(f"unexpected pseudo parameter {name}")
        return name.lower()  # a bucket of the stack: its physical name, lower case as S3 wants

    @staticmethod
    def _get_att(name: str, attribute: str) -> str:
        raise AssertionError(f"unexpected Fn::GetAtt {name}.{attribute}")

    def properties(self, logical_id: str) -> dict:
        props = self.template["Resources"][logical_id]["Properties"]
        return {
            key: [self._resolve(v) for v in value] if isinstance(value, list) else self._resolve(value)
            for key, value in props.items()
            if key != "ServiceToken"
        }

    def publish(self, props: dict, edit=None, key: str | None = None) -> dict:
        """cdk-assets' job: zip the staged asset directory into the asset bucket; `edit` changes a staged file."""
        object_key = props["SourceObjectKeys"][0]
        staged = self.outdir / self.manifest[object_key.removesuffix(".zip")]["source"]["path"]
        bucket = self._bucket(props["SourceBucketNames"][0])
        archive = self.outdir.parent / (key or object_key)
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in sorted(p for p in staged.rglob("*") if p.is_file()):
                data = path.read_bytes()
                zipped.writestr(path.relative_to(staged).as_posix(), edit(path.name, data) if edit else data)
        self.s3.upload_file(str(archive), bucket, key or object_key)
        return {**props, "SourceObjectKeys": [key or object_key]}

    def send(
        self,
        request_type: str,
        logical_id: str,
        props: dict,
        old_props: dict | None = None,
        physical_id: str | None = None,
    ) -> dict:
        self._bucket(props["DestinationBucketName"])
        response_key = f"{logical_id}-{request_type}"
        event = {
            "RequestType": request_type,
            "ResourceProperties": props,
            "StackId": "stack",
            "RequestId": response_key,
            "LogicalResourceId": logical_id,
            "ResourceType": "Custom::CDKBucketDeployment",
            "ResponseURL": self.s3.generate_presigned_url(
                "put_object", Params={"Bucket": RESPONSES_BUCKET, "Key": response_key}, ExpiresIn=300
            ),
        }
        if old_props is not None:
            event |= {"OldResourceProperties": old_props, "PhysicalResourceId": physical_id}
        self.handler.handler(event, types.SimpleNamespace(log_stream_name="local"))
        response = json.loads(self.s3.get_object(Bucket=RESPONSES_BUCKET, Key=response_key)["Body"].read())
        assert response["Status"] == "SUCCESS", response["Reason"]
        return response

    def keys(self, bucket: str, prefix: str) -> set[str]:
        return {item["Key"] for item in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def _upload_id(template: dict, construct: str) -> str:
    return next(
        k
        for k, v in template["Resources"].items()
        if v["Type"] == "Custom::CDKBucketDeployment" and k.startswith(f"Uploads{construct}CustomResource")
    )


def _redeploy(deployer: Deployer, logical_id: str, edit) -> tuple[dict, callable]:
    """Create from the synthesized asset, then the Update an edited asset causes; returns the props."""
    first = deployer.publish(deployer.properties(logical_id))
    created = deployer.send("Create", logical_id, first)

    def update() -> dict:
        second = deployer.publish(first, edit=edit, key="edited-" + first["SourceObjectKeys"][0])
        deployer.send("Update", logical_id, second, old_props=first, physical_id=created["PhysicalResourceId"])
        return second

    return first, update


def test_dataset_redeploy_keeps_the_users_files(dev, handler):
    """A user's CSV beside the sample survives a deploy that changes the sample (the data prefix is theirs)."""
    deployer = Deployer(dev, handler)
    props, update = _redeploy(
        deployer, _upload_id(dev.template, "Dataset"), edit=lambda _name, data: data + b"201,Male,30,70,50\n"
    )
    bucket, prefix = props["DestinationBucketName"], props["DestinationBucketKeyPrefix"]
    user_key = f"{prefix}customers_2026.csv"
    deployer.s3.put_object(
        Bucket=bucket, Key=user_key, Body=b"CustomerID,Genre,Age,Annual Income (k$),Spending Score (1-100)\n"
    )

    update()

    assert deployer.keys(bucket, prefix) == {user_key, f"{prefix}Mall_Customers.csv"}
    sample = deployer.s3.get_object(Bucket=bucket, Key=f"{prefix}Mall_Customers.csv")["Body"].read()
    assert sample.endswith(b"201,Male,30,70,50\n"), "the update did not deliver the edited sample"


def test_code_redeploy_removes_stale_step_files(dev, handler):
    """emr_steps/ belongs to the stack alone: a step file no longer in the repo must not linger on S3."""
    deployer = Deployer(dev, handler)
    props, update = _redeploy(deployer, _upload_id(dev.template, "EmrSteps"), edit=lambda _name, data: data)
    bucket, prefix = props["DestinationBucketName"], props["DestinationBucketKeyPrefix"]
    stale = f"{prefix}renamed_in_a_later_commit.py"
    deployer.s3.put_object(Bucket=bucket, Key=stale, Body=b"print('old')\n")

    update()

    keys = deployer.keys(bucket, prefix)
    assert stale not in keys
    assert keys, "the update left no step files"


@pytest.fixture(scope="module")
def renamed_dataset(tmp_path_factory):
    """The stack synthesized with `-c dataset_path=…/customers_2026.csv`: a local file of another name."""
    from .infra_support import synthesize

    dataset = tmp_path_factory.mktemp("data") / "customers_2026.csv"
    dataset.write_bytes((REPO_ROOT / "sample_data" / "Mall_Customers.csv").read_bytes() + b"201,Male,30,70,50\n")
    return dataset, synthesize(tmp_path_factory.mktemp("cdk-renamed"), {"dataset_path": str(dataset)})


def test_the_pipeline_reads_the_uploaded_dataset_whatever_its_local_name(renamed_dataset, handler):
    """CloudFormation creates the Dataset upload; the object the emr_pipeline Variable's input_uri names
    must then exist and hold the user's file (else the EMR step's first run fails on AWS)."""
    dataset, assembly = renamed_dataset
    deployer = Deployer(assembly, handler)
    logical_id = _upload_id(assembly.template, "Dataset")
    deployer.send("Create", logical_id, deployer.publish(deployer.properties(logical_id)))

    env = parse_env(node_env(assembly.template, "SchedulerInstance", ref=deployer._ref))
    bucket, _, key = json.loads(env["EMR_PIPELINE_JSON"])["input_uri"].removeprefix("s3://").partition("/")
    uploaded = deployer.keys(bucket, "")
    assert key in uploaded, f"input_uri names {key}, the deployment uploaded {sorted(uploaded)}"
    assert deployer.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == dataset.read_bytes()
