"""IAM of the synthesized template, checked the way AWS decides.

parliament lints every policy document of the template (intrinsics rendered to example values);
the evaluator of rehearsal/aws/iam_policy.py, built on parliament's IAM action database and the
checked-in AWS managed policies, decides the exact requests the DAGs make and those EMR makes with
the roles the DAGs pass.
"""

from __future__ import annotations

import json
import sys

import pytest

from rehearsal.aws import emrfs, iam_lint
from rehearsal.aws.emr_launch import EMR_LAUNCH, EmrRoles, assume_context, launch_requests, request_tags
from rehearsal.aws.example_values import ExampleValues
from rehearsal.aws.iam_policy import Request, TemplateIam, evaluate, may_assume
from stacks.config import REPO_ROOT
from stacks.nag import EMR_TAG_KEY as MANAGED_POLICY_TAG

from .infra_support import VARIANTS

ACCOUNT = ExampleValues.ACCOUNT
FOREIGN_ACCOUNT = "999999999999"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
EMR_SERVICE = "elasticmapreduce.amazonaws.com"


class Iam:
    """One synthesized variant: its roles, the rendered emr_pipeline Variable, the DAG's RunJobFlow request."""

    def __init__(self, assembly) -> None:
        template = assembly.template
        self.region = "us-west-2"
        self.values = ExampleValues(template, region=self.region, stack_name=assembly.stack_name)
        self.template = TemplateIam(template, self.values)
        self.resources = template["Resources"]
        output = template["Outputs"]["EmrPipelineVariable"]["Value"]
        self.pipeline = json.loads(self.values.render(output))

    def role(self, prefix: str):
        return self.template.principal(self.template.role_named(prefix))

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role/{name}"

    def instance_profile_role(self, profile_name: str) -> str:
        """The name of the role in the instance profile called `profile_name` (EMR's JobFlowRole)."""
        for logical, resource in self.resources.items():
            if resource["Type"] == "AWS::IAM::InstanceProfile" and self.values.physical_name(logical) == profile_name:
                (role_ref,) = resource["Properties"]["Roles"]
                return self.values.ref(role_ref["Ref"])
        raise AssertionError(f"no instance profile named {profile_name}")

    def job_flow(self) -> dict:
        from emr_pipeline.job_flow import job_flow_overrides

        return job_flow_overrides(self.pipeline, RUN_ID)

    def cluster_tags(self) -> dict[str, str]:
        return {tag["Key"]: tag["Value"] for tag in self.job_flow()["Tags"]}

    def cluster_arn(self, cluster_id: str = "j-1K48XXXXXXHCB") -> str:
        return f"arn:aws:elasticmapreduce:{self.region}:{ACCOUNT}:cluster/{cluster_id}"


@pytest.fixture(scope="module")
def dags_on_path():
    dags = str(REPO_ROOT / "airflow_assets" / "dags")
    sys.path.insert(0, dags)
    yield
    sys.path.remove(dags)


@pytest.fixture(scope="module")
def iam(dev, dags_on_path) -> Iam:
    return Iam(dev)


def resource_tags(tags: dict[str, str]) -> dict:
    return {f"aws:ResourceTag/{key}": value for key, value in tags.items()}


# --- parliament ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parliament_finds_no_policy_aws_would_not_honour(assemblies, variant):
    assembly = assemblies[variant]
    template = TemplateIam(
        assembly.template, ExampleValues(assembly.template, region="us-west-2", stack_name=assembly.stack_name)
    )
    documents = template.documents()
    assert any(is_trust for _, _, is_trust in documents) and len(documents) > 10
    findings = iam_lint.blocking(iam_lint.lint(documents))
    assert findings == [], "\n".join(map(str, findings))


def test_parliament_sees_a_resource_type_mismatch():
    # The check above can fail: the defect issue 8 reported is one parliament names.
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "elasticmapreduce:RunJobFlow",
                "Resource": f"arn:aws:elasticmapreduce:us-west-2:{ACCOUNT}:cluster/*",
            }
        ],
    }
    (finding,) = iam_lint.blocking(iam_lint.lint([("NodeRolePolicy", document, False)]))
    assert finding.issue == "RESOURCE_MISMATCH"


# --- what DAG_1 and DAG_2 ask AWS for, with the node role --------------------------------------------


def test_the_node_role_may_create_the_cluster_the_dag_requests(iam):
    node = iam.role("NodeRole")
    job_flow = iam.job_flow()
    run = evaluate(node, Request("elasticmapreduce:RunJobFlow", "*", request_tags(iam.cluster_tags())))
    assert run, run.reason
    service_role = evaluate(
        node, Request("iam:PassRole", iam.role_arn(job_flow["ServiceRole"]), {"iam:PassedToService": EMR_SERVICE})
    )
    assert service_role, service_role.reason
    instance_role = iam.instance_profile_role(job_flow["JobFlowRole"])
    passed = evaluate(
        node, Request("iam:PassRole", iam.role_arn(instance_role), {"iam:PassedToService": "ec2.amazonaws.com"})
    )
    assert passed, passed.reason


def test_the_node_role_passes_no_other_role_and_to_no_other_service(iam):
    node = iam.role("NodeRole")
    job_flow = iam.job_flow()
    assert not evaluate(
        node, Request("iam:PassRole", iam.role_arn("SomeAdminRole"), {"iam:PassedToService": EMR_SERVICE})
    )
    assert not evaluate(
        node,
        Request("iam:PassRole", iam.role_arn(job_flow["ServiceRole"]), {"iam:PassedToService": "lambda.amazonaws.com"}),
    )


def test_a_cluster_without_this_stacks_tag_cannot_be_created(iam):
    node = iam.role("NodeRole")
    tags = iam.cluster_tags()
    stack_tag = next(key for key, value in tags.items() if value == iam.values.stack_name)
    for missing in (stack_tag, "for-use-with-amazon-emr-managed-policies"):
        untagged = {key: value for key, value in tags.items() if key != missing}
        assert not evaluate(node, Request("elasticmapreduce:RunJobFlow", "*", request_tags(untagged))), missing
    other_stack = {**tags, stack_tag: "SomeoneElsesStack"}
    assert not evaluate(node, Request("elasticmapreduce:RunJobFlow", "*", request_tags(other_stack)))


CLUSTER_ACTIONS = [
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:AddJobFlowSteps",
    "elasticmapreduce:DescribeStep",
    "elasticmapreduce:ListSteps",
    "elasticmapreduce:CancelSteps",
    "elasticmapreduce:TerminateJobFlows",
]


@pytest.mark.parametrize("action", CLUSTER_ACTIONS)
def test_the_dags_act_on_their_own_clusters_only(iam, action):
    node = iam.role("NodeRole")
    ours = evaluate(node, Request(action, iam.cluster_arn(), resource_tags(iam.cluster_tags())))
    assert ours, ours.reason
    theirs = resource_tags({"team": "analytics", "for-use-with-amazon-emr-managed-policies": "true"})
    assert not evaluate(node, Request(action, iam.cluster_arn("j-3SOMEONEELSE"), theirs))
    assert not evaluate(node, Request(action, iam.cluster_arn("j-3SOMEONEELSE")))


def test_no_wildcard_cluster_grant_escapes_the_stack_tag(iam):
    # Every EMR action either role holds on cluster ARNs is refused on a cluster this stack did not tag.
    for prefix in ("NodeRole", "EmrRolesInstanceRole"):
        principal = iam.role(prefix)
        for policy in principal.policies:
            for statement in policy.document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for action in (
                    a for a in actions if a.startswith("elasticmapreduce:") and a != "elasticmapreduce:RunJobFlow"
                ):
                    decision = evaluate(
                        principal, Request(action, iam.cluster_arn("j-3SOMEONEELSE"), resource_tags({"team": "x"}))
                    )
                    assert not decision, decision.reason


# --- a brand-new account ---------------------------------------------------------------------------


def test_emr_may_create_its_cleanup_service_linked_role_and_nothing_else(iam):
    node = iam.role("NodeRole")
    cleanup = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/elasticmapreduce.amazonaws.com/AWSServiceRoleForEMRCleanup"
    allowed = evaluate(node, Request("iam:CreateServiceLinkedRole", cleanup, {"iam:AWSServiceName": EMR_SERVICE}))
    assert allowed, allowed.reason
    assert not evaluate(
        node, Request("iam:CreateServiceLinkedRole", cleanup, {"iam:AWSServiceName": "ecs.amazonaws.com"})
    )
    other = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    assert not evaluate(
        node, Request("iam:CreateServiceLinkedRole", other, {"iam:AWSServiceName": "ecs.amazonaws.com"})
    )
    assert not any(r["Type"] == "AWS::IAM::ServiceLinkedRole" for r in iam.resources.values())


# --- what EMR does with the roles the DAG passes -------------------------------------------------------


@pytest.mark.parametrize(("action", "resource"), EMR_LAUNCH)
def test_emr_can_launch_the_clusters_instances_with_the_v2_service_policy(iam, action, resource):
    # The local EMR fails a cluster's start on the same requests (rehearsal/aws/emr_launch.py).
    service = iam.role("EmrRolesServiceRole")
    # EMR tags what it launches with the cluster's tags; AmazonEMRServicePolicy_v2 requires its own.
    tags = iam.cluster_tags()
    (launch,) = [
        r
        for r in launch_requests(iam.region, ACCOUNT, tags)
        if (r.action, r.resource.rsplit(":", 1)[1]) == (action, resource)
    ]
    decision = evaluate(service, launch)
    unmarked = (
        ""
        if tags.get(MANAGED_POLICY_TAG) == "true"
        else (
            f"; the cluster's tags lack {MANAGED_POLICY_TAG}=true, which AmazonEMRServicePolicy_v2 requires on what EMR launches"
        )
    )
    assert decision, decision.reason + unmarked
    (untagged,) = [
        r
        for r in launch_requests(iam.region, ACCOUNT, {"airflow:dag_id": "dag_1"})
        if r.resource == launch.resource and r.action == action
    ]
    assert not evaluate(service, untagged)


def test_emr_would_start_the_dags_cluster_with_these_roles(iam):
    # All of EMR's start checks the local EMR makes, on the example-rendered template (any account).
    job_flow = iam.job_flow()
    logical_ids = {iam.values.ref(logical): logical for logical in iam.template.roles()}
    roles = EmrRoles(
        ACCOUNT, iam.region, lambda name: iam.template.principal(logical_ids[name]) if name in logical_ids else None
    )
    instance_role = iam.instance_profile_role(job_flow["JobFlowRole"])
    problem = roles.start_problem(
        service_role=job_flow["ServiceRole"],
        instance_role=instance_role,
        tags=iam.cluster_tags(),
        cluster_id="j-1K48XXXXXXHCB",
    )
    assert problem is None


def test_the_instance_profile_is_named_like_its_role(iam):
    profiles = {
        name: r
        for name, r in iam.resources.items()
        if r["Type"] == "AWS::IAM::InstanceProfile" and name.startswith("EmrRoles")
    }
    assert profiles
    for logical, profile in profiles.items():
        (role_ref,) = profile["Properties"]["Roles"]
        name, role = iam.values.physical_name(logical), iam.values.ref(role_ref["Ref"])
        assert name == role, f"EMR rejects JobFlowRole {name}: an instance profile must be named like its role ({role})"
    assert iam.instance_profile_role(iam.pipeline["job_flow_role"]) == iam.pipeline["job_flow_role"]


def test_only_emr_of_this_account_and_region_may_assume_the_service_role(iam):
    service = iam.role("EmrRolesServiceRole")
    assert may_assume(service, EMR_SERVICE, assume_context(ACCOUNT, iam.cluster_arn()))
    foreign = assume_context(FOREIGN_ACCOUNT, iam.cluster_arn().replace(ACCOUNT, FOREIGN_ACCOUNT))
    assert not may_assume(service, EMR_SERVICE, foreign)
    assert not may_assume(service, EMR_SERVICE, {})


# --- EMRFS on the cluster, with the instance role ------------------------------------------------------


def s3_object(uri: str) -> str:
    return "arn:aws:s3:::" + uri.removeprefix("s3://")


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def allowed(principal, calls: list[emrfs.S3Call]) -> None:
    """Every IAM request of EMRFS's calls (rehearsal/aws/emrfs.py, which the local EMR makes) is allowed."""
    for call in calls:
        for request in call.iam_requests():
            decision = evaluate(principal, request)
            assert decision, (call, decision.reason)


def test_the_steps_read_exactly_the_input_object(iam):
    instance = iam.role("EmrRolesInstanceRole")
    bucket, key = split(iam.pipeline["input_uri"])
    folder = key.rsplit("/", 1)[0]
    allowed(instance, emrfs.read_file(bucket, key))
    assert not evaluate(instance, Request("s3:GetObject", f"arn:aws:s3:::{bucket}/{folder}/other.csv"))
    # Hive's table LOCATION is the folder: EMRFS asks for its status (HEAD key, HEAD marker, list `folder/`).
    allowed(instance, emrfs.file_status(bucket, folder))


def test_emrfs_writes_only_under_the_output_prefix(iam):
    instance = iam.role("EmrRolesInstanceRole")
    bucket, output = split(iam.pipeline["output_uri"].rstrip("/"))
    run = f"{output}/run=manual__1"
    # A first run: EMRFS finds no output directory, creates it and the run's, writes, and later deletes.
    allowed(instance, emrfs.file_status(bucket, output))
    allowed(
        instance,
        emrfs.write_tree(bucket, [output, run], [f"{run}/part-00000.parquet", f"{run}/_SUCCESS", f"{output}/_LATEST"]),
    )
    allowed(
        instance,
        emrfs.read_file(bucket, f"{run}/part-00000.parquet") + emrfs.delete_file(bucket, f"{run}/part-00000.parquet"),
    )
    parent = output.rsplit("/", 1)[0]
    for outside in (
        f"{parent}/_tmp_{output.rsplit('/', 1)[1]}_x/part-0.parquet",
        f"{output}_old/part-0.parquet",
        output,
    ):
        (put,) = emrfs.write_file(bucket, outside)
        assert not any(evaluate(instance, request) for request in put.iam_requests()), outside


@pytest.mark.parametrize("prefix", ["NodeRole", "WorkerRole"])
def test_the_outcome_mail_may_read_why_a_step_failed_and_what_was_published(iam, prefix):
    # dag_1.email_outcome (on any node that runs tasks) reads the steps' failure summary under the EMR log
    # prefix (emr_pipeline.steps.failure_summary_uri) and the output's _LATEST pointer.
    from emr_pipeline.diagnosis import LATEST_POINTER
    from emr_pipeline.steps import failure_summary_uri

    node = iam.role(prefix)
    summary = failure_summary_uri(iam.pipeline["log_uri"], "j-1K48XXXXXXHCB", "sort_customers_by_spending_score")
    pointer = iam.pipeline["output_uri"].rstrip("/") + "/" + LATEST_POINTER
    for uri in (summary, pointer):
        decision = evaluate(node, Request("s3:GetObject", s3_object(uri)))
        assert decision, (uri, decision.reason)
    assert not evaluate(node, Request("s3:PutObject", s3_object(summary)))
