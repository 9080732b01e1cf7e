"""stacks/cfn_values.py: the one renderer of CloudFormation intrinsics (cdk-nag ids, rehearsal, tests)."""

from __future__ import annotations

import pytest

from stacks.cfn_values import references, render, render_tree

ARN = {"Fn::Join": ["", [{"Fn::GetAtt": ["BucketsData", "Arn"]}, "/input/*"]]}


def test_references_render_as_cdk_nag_placeholders():
    assert render(ARN) == "<BucketsData.Arn>/input/*"
    assert render({"Ref": "AWS::Region"}) == "<AWS::Region>"
    assert render({"Fn::GetAtt": "Db.Endpoint.Port"}) == "<Db.Endpoint.Port>"
    assert render({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Logs}/x-${Role.Arn}"}) == (
        "arn:<AWS::Partition>:s3:::<Logs>/x-<Role.Arn>"
    )


def test_an_escaped_sub_variable_stays_literal():
    assert render({"Fn::Sub": "${!NotAVariable}-${Real}"}) == "${!NotAVariable}-<Real>"


def test_callers_decide_what_a_reference_becomes():
    assert render(ARN, ref=str.lower, get_att=lambda name, attribute: f"arn:aws:s3:::{name.lower()}") == (
        "arn:aws:s3:::bucketsdata/input/*"
    )


def test_render_tree_renders_every_intrinsic_and_keeps_the_rest():
    policy = {"Statement": [{"Effect": "Allow", "Resource": [ARN, "*"], "Condition": {"Bool": {"x": "true"}}}]}
    assert render_tree(policy) == {
        "Statement": [
            {"Effect": "Allow", "Resource": ["<BucketsData.Arn>/input/*", "*"], "Condition": {"Bool": {"x": "true"}}}
        ]
    }


def test_an_intrinsic_it_cannot_render_is_an_error_naming_it():
    with pytest.raises(ValueError, match="Fn::Select"):
        render({"Fn::Select": [0, {"Fn::GetAZs": ""}]})


def test_references_finds_every_name_a_value_points_at():
    value = {
        "A": ARN,
        "B": [{"Ref": "Secret"}, {"Fn::Sub": ["${Host}:${Db.Port}-${!Literal}", {"Host": {"Ref": "Dns"}}]}],
        "C": {"Fn::Base64": {"Fn::Sub": "${AWS::Region}"}},
    }
    assert references(value) == {"BucketsData", "Secret", "Host", "Db", "Dns", "AWS::Region"}
