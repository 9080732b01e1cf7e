"""EmrRoles: the service role and the EMRFS-scoped instance role.

stacks/constructs/emr_roles.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

from aws_cdk.assertions import Match, Template

from stacks.constructs.emr_roles import EmrRoles

from ..infra_support import bare_stack


def test_emr_roles_service_policy_v2_pass_role_and_emrfs_scoped_instance_role():
    stack = bare_stack()
    roles = EmrRoles(
        stack,
        "Emr",
        readable=["s3://data/input/mall_customers/Mall_Customers.csv"],
        writable=["s3://data/output/x/", "s3://logs/emr/"],
        cluster_tag=("airflow-emr-stack", "S"),
    )
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "elasticmapreduce.amazonaws.com"}})]
            },
            "ManagedPolicyArns": [
                {
                    "Fn::Join": [
                        "",
                        ["arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"],
                    ]
                }
            ],
        },
    )
    role_name = stack.resolve(roles.instance_role.role_name)
    t.has_resource_properties("AWS::IAM::InstanceProfile", {"Roles": [role_name], "InstanceProfileName": role_name})
    policies = t.find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    pass_role = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert len(pass_role) == 1 and pass_role[0]["Resource"] == stack.resolve(roles.instance_role.role_arn)
    assert pass_role[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    rendered = str(stack.resolve(statements))
    assert (
        ":s3:::data/input/mall_customers/Mall_Customers.csv" in rendered
        and ":s3:::data/input/mall_customers/*" not in rendered
    )
    assert ":s3:::data/output/x/*" in rendered and ":s3:::logs/emr/*" in rendered
    assert ":s3:::data/output/x_$folder$" in rendered and ":s3:::logs/emr_$folder$" in rendered
    assert "s3:*" not in rendered and "'Resource': '*'" not in rendered
    get_input = next(s for s in statements if "Mall_Customers.csv" in str(s["Resource"]))
    assert get_input["Action"] == "s3:GetObject", "the input is read-only for EMR"
