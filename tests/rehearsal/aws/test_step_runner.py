"""Step runner state machine on emulated clusters, with steps that fail before Spark starts."""

from __future__ import annotations

from rehearsal.aws.s3_uri import S3Uri

from .emulator_support import cluster_state, command_step, start_cluster, wait_for, wait_for_steps

UNSUPPORTED = ["bash", "-c", "exit 0"]  # command-runner.jar can run it on EMR; the local runner refuses


def add_steps(aws, cluster_id, steps):
    return aws.client("emr").add_job_flow_steps(JobFlowId=cluster_id, Steps=steps)["StepIds"]


def step_states(steps):
    return [step["Status"]["State"] for step in steps]


def test_failed_step_has_failure_details_and_logs_and_cancel_and_wait_cancels_the_rest(local_aws):
    cluster_id = start_cluster(local_aws)
    ids = add_steps(
        local_aws,
        cluster_id,
        [command_step("refused", UNSUPPORTED), command_step("after", ["spark-submit", "s3://x/y.py"])],
    )
    failed, cancelled = wait_for_steps(local_aws, cluster_id, ids, timeout=30)

    assert step_states([failed, cancelled]) == ["FAILED", "CANCELLED"]
    details = failed["Status"]["FailureDetails"]
    assert "unsupported step command 'bash'" in details["Reason"]
    log_file = f"{local_aws.pipeline_config['log_uri']}{cluster_id}/steps/{ids[0]}/stderr"
    assert details["LogFile"] == log_file
    assert failed["Status"]["Timeline"]["StartDateTime"] <= failed["Status"]["Timeline"]["EndDateTime"]
    assert f"{cluster_id}/steps/{ids[0]}/stderr" in " ".join(local_aws.list_keys(log_file))
    local_stderr = local_aws.step_log_dir(cluster_id, ids[0]) / "stderr"
    assert "unsupported step command" in local_stderr.read_text()
    assert wait_for(lambda: cluster_state(local_aws, cluster_id)["State"] == "WAITING", timeout=10)


def test_continue_runs_the_next_step(local_aws):
    cluster_id = start_cluster(local_aws)
    ids = add_steps(
        local_aws,
        cluster_id,
        [command_step("first", UNSUPPORTED, "CONTINUE"), command_step("second", UNSUPPORTED, "CONTINUE")],
    )
    steps = wait_for_steps(local_aws, cluster_id, ids, timeout=30)
    assert step_states(steps) == ["FAILED", "FAILED"]
    assert steps[0]["Status"]["Timeline"]["EndDateTime"] <= steps[1]["Status"]["Timeline"]["StartDateTime"]


def test_terminate_cluster_on_failure_cancels_the_rest_and_terminates_with_errors(local_aws):
    cluster_id = start_cluster(local_aws)
    ids = add_steps(
        local_aws,
        cluster_id,
        [command_step("fatal", UNSUPPORTED, "TERMINATE_CLUSTER"), command_step("never", UNSUPPORTED)],
    )
    steps = wait_for_steps(local_aws, cluster_id, ids, timeout=30)
    assert step_states(steps) == ["FAILED", "CANCELLED"]
    status = cluster_state(local_aws, cluster_id)
    assert status["State"] == "TERMINATED_WITH_ERRORS"
    assert status["StateChangeReason"]["Code"] == "STEP_FAILURE"


def test_cluster_without_keep_alive_terminates_after_its_steps(local_aws):
    cluster_id = start_cluster(local_aws, keep_alive=False, Steps=[command_step("only", UNSUPPORTED, "CONTINUE")])
    step_id = local_aws.client("emr").list_steps(ClusterId=cluster_id)["Steps"][0]["Id"]
    wait_for_steps(local_aws, cluster_id, [step_id], timeout=30)
    status = wait_for(
        lambda: (s := cluster_state(local_aws, cluster_id))["State"].startswith("TERMINATED") and s,
        timeout=10,
        what="auto-termination",
    )
    assert status["State"] == "TERMINATED_WITH_ERRORS"
    assert status["StateChangeReason"] == {"Code": "ALL_STEPS_COMPLETED", "Message": "Steps completed with errors"}


def test_cluster_with_a_missing_instance_profile_fails_validation_like_emr(local_aws):
    cluster_id = start_cluster(local_aws, JobFlowRole="NoSuchProfile", Steps=[command_step("never", UNSUPPORTED)])
    step_id = local_aws.client("emr").list_steps(ClusterId=cluster_id)["Steps"][0]["Id"]
    (step,) = wait_for_steps(local_aws, cluster_id, [step_id], timeout=30)
    assert step["Status"]["State"] == "CANCELLED"
    status = cluster_state(local_aws, cluster_id)
    assert status["State"] == "TERMINATED_WITH_ERRORS"
    assert status["StateChangeReason"]["Code"] == "VALIDATION_ERROR"
    assert "NoSuchProfile" in status["StateChangeReason"]["Message"]


def test_clusters_view_lists_steps_in_submission_order(local_aws):
    cluster_id = start_cluster(local_aws)
    ids = add_steps(local_aws, cluster_id, [command_step(f"s{n}", UNSUPPORTED, "CONTINUE") for n in range(3)])
    wait_for_steps(local_aws, cluster_id, ids, timeout=30)
    (view,) = [cluster for cluster in local_aws.clusters() if cluster["id"] == cluster_id]
    assert [step["id"] for step in view["steps"]] == ids
    assert [step["name"] for step in view["steps"]] == ["s0", "s1", "s2"]
    assert view["steps"][0]["args"] == UNSUPPORTED
    assert view["steps"][0]["state"] == "FAILED" and view["steps"][0]["failure_details"]["Reason"]
    assert view["state"] == "WAITING"
    assert local_aws.steps_idle()


def test_steps_added_to_a_terminated_cluster_are_cancelled_and_it_stays_terminated(local_aws):
    cluster_id = start_cluster(local_aws)
    emr = local_aws.client("emr")
    emr.terminate_job_flows(JobFlowIds=[cluster_id])
    (step_id,) = add_steps(local_aws, cluster_id, [command_step("late", UNSUPPORTED)])
    (step,) = wait_for_steps(local_aws, cluster_id, [step_id], timeout=30)
    assert step["Status"]["State"] == "CANCELLED"
    assert cluster_state(local_aws, cluster_id)["State"] == "TERMINATED"


def test_a_crash_inside_the_runner_fails_the_step_instead_of_leaving_it_running(local_aws, monkeypatch):
    def crash(cluster, step):
        raise RuntimeError("boom")

    monkeypatch.setattr(local_aws._runner, "_run_step", crash)
    cluster_id = start_cluster(local_aws)
    ids = add_steps(local_aws, cluster_id, [command_step("crashes", UNSUPPORTED), command_step("next", UNSUPPORTED)])
    crashed, cancelled = wait_for_steps(local_aws, cluster_id, ids, timeout=30)
    assert crashed["Status"]["State"] == "FAILED"
    assert crashed["Status"]["FailureDetails"]["Reason"] == "step runner error: RuntimeError: boom"
    assert cancelled["Status"]["State"] == "CANCELLED"


def test_airflow_emr_sensors_read_the_failure_through_the_aws_default_connection(local_aws, monkeypatch):
    from airflow.providers.amazon.aws.hooks.emr import EmrHook
    from airflow.providers.amazon.aws.sensors.emr import EmrJobFlowSensor, EmrStepSensor

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", local_aws.airflow_connection_uri)
    cluster_id = start_cluster(local_aws)
    (step_id,) = add_steps(local_aws, cluster_id, [command_step("refused", UNSUPPORTED, "TERMINATE_CLUSTER")])
    wait_for_steps(local_aws, cluster_id, [step_id], timeout=30)

    emr = EmrHook(aws_conn_id="aws_default").conn
    step = emr.describe_step(ClusterId=cluster_id, StepId=step_id)
    assert EmrStepSensor.state_from_response(step) == "FAILED"
    message = EmrStepSensor.failure_message_from_response(step)
    assert "unsupported step command 'bash'" in message
    assert f"{cluster_id}/steps/{step_id}/stderr" in message
    cluster = emr.describe_cluster(ClusterId=cluster_id)
    assert EmrJobFlowSensor.state_from_response(cluster) == "TERMINATED_WITH_ERRORS"
    assert EmrJobFlowSensor.failure_message_from_response(cluster) == (
        "for code: STEP_FAILURE with message Shut down as step failed"
    )


def test_later_steps_keep_the_earlier_steps_locations_in_sync(local_aws):
    from types import SimpleNamespace

    from rehearsal.aws.s3_uri import S3Uri
    from rehearsal.aws.step_commands import parse_step

    runner, cluster = local_aws._runner, SimpleNamespace(id="j-LOCATIONS")
    hive = parse_step("command-runner.jar", ["hive", "-f", "s3://c/a.hql", "--hivevar", "in=s3://d/in/"])
    spark = parse_step("command-runner.jar", ["spark-submit", "s3://c/job.py", "--output", "s3://d/out/"])
    assert runner._locations_for(cluster, hive) == [S3Uri("c", "a.hql"), S3Uri("d", "in/")]
    # The Spark step reads the table whose LOCATION the hive step named: s3://d/in/ is synced too.
    assert runner._locations_for(cluster, spark) == [
        S3Uri("c", "a.hql"),
        S3Uri("d", "in/"),
        S3Uri("c", "job.py"),
        S3Uri("d", "out/"),
    ]
    assert runner._locations_for(SimpleNamespace(id="j-OTHER"), spark) == [
        S3Uri("c", "job.py"),
        S3Uri("d", "out/"),
    ]


# --- EMR's own rules: the instance role's S3 access, and what EMR checks at cluster start ------------------


def instance_principal(aws):
    return f"arn:aws:sts::{aws.account_id}:assumed-role/AirflowEmr-Ec2Role/rehearsal-emr-step"


def test_a_step_reading_what_the_instance_role_may_not_read_fails_with_the_iam_message(local_aws):
    # The object exists, but the instance role's policies do not reach it: EMRFS's HEAD is refused
    # before the step's command starts, and the step fails as on EMR, naming who, what and where.
    job = "s3://airflow-emr-data/not-for-emr/job.py"
    local_aws.upload_bytes(b"print('must not run')\n", job)
    cluster_id = start_cluster(local_aws)
    (step_id,) = add_steps(local_aws, cluster_id, [command_step("denied", ["spark-submit", job])])
    (step,) = wait_for_steps(local_aws, cluster_id, [step_id], timeout=60)

    assert step["Status"]["State"] == "FAILED"
    expected = (
        f"User: {instance_principal(local_aws)} is not authorized to perform: s3:GetObject "
        f"on resource: arn:aws:s3:::airflow-emr-data/not-for-emr/job.py"
    )
    details = step["Status"]["FailureDetails"]
    assert expected in details["Reason"] and expected in details["Message"]
    assert expected in (local_aws.step_log_dir(cluster_id, step_id) / "stderr").read_text()
    denied = [d for d in local_aws.iam_report()["denied"] if d["resource"].endswith("/not-for-emr/job.py")]
    assert denied and denied[0]["principal"] == instance_principal(local_aws) and denied[0]["action"] == "s3:GetObject"


def _validation(aws, cluster_id):
    status = wait_for(
        lambda: (s := cluster_state(aws, cluster_id))["State"] == "TERMINATED_WITH_ERRORS" and s,
        timeout=30,
        what="the cluster to fail validation",
    )
    assert status["StateChangeReason"]["Code"] == "VALIDATION_ERROR"
    return status["StateChangeReason"]["Message"]


def test_a_cluster_without_the_managed_policy_tag_fails_like_emr(local_aws):
    # AmazonEMRServicePolicy_v2 lets EMR launch instances only tagged for-use-with-amazon-emr-managed-policies=true.
    tags = {
        k: v
        for k, v in local_aws.pipeline_config["cluster_tags"].items()
        if k != "for-use-with-amazon-emr-managed-policies"
    }
    cluster_id = start_cluster(local_aws, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    message = _validation(local_aws, cluster_id)
    service_role = local_aws.pipeline_config["service_role"]
    assert (
        message
        == f"Service role arn:aws:iam::{local_aws.account_id}:role/{service_role} has insufficient EC2 permissions"
    )


def test_an_instance_profile_named_apart_from_its_role_fails_like_emr(local_aws):
    iam = local_aws.client("iam")
    role = iam.get_instance_profile(InstanceProfileName=local_aws.pipeline_config["job_flow_role"])["InstanceProfile"][
        "Roles"
    ][0]["RoleName"]
    iam.create_instance_profile(InstanceProfileName="ProfileNamedApart")
    iam.add_role_to_instance_profile(InstanceProfileName="ProfileNamedApart", RoleName=role)
    cluster_id = start_cluster(local_aws, JobFlowRole="ProfileNamedApart")
    assert _validation(local_aws, cluster_id).startswith("Invalid InstanceProfile: ProfileNamedApart.")


def test_the_service_role_must_trust_emr_for_this_account(local_aws):
    from rehearsal.aws.emr_launch import EmrRoles

    ours = local_aws._emr_roles
    config = local_aws.pipeline_config
    role = config["job_flow_role"]  # named like its role
    kwargs = {
        "service_role": config["service_role"],
        "instance_role": role,
        "tags": config["cluster_tags"],
        "cluster_id": "j-1TRUST",
    }
    assert ours.start_problem(**kwargs) is None
    # The template's trust policy conditions EMR's AssumeRole on aws:SourceAccount / aws:SourceArn.
    foreign = EmrRoles("999999999999", ours.region, ours.principal_of)
    problem = foreign.start_problem(**kwargs)
    assert problem.startswith(
        f"Service role arn:aws:iam::999999999999:role/{config['service_role']} cannot be assumed by elasticmapreduce.amazonaws.com"
    )


# --- EMRFS PUTs every file a step writes, also those renamed or deleted before the step ends --------------


def _staged_write(aws, monkeypatch, staging_name):
    """A step stand-in (no Spark) that writes its output in a staging folder and renames it into place."""
    import time

    runner = aws._runner
    mirror_root = runner._mirror_root
    output = S3Uri.parse(aws.pipeline_config["output_uri"])

    def execute(cluster, step, argv, stdout_path, stderr_path):
        out = mirror_root / output.bucket / output.stem
        staging = (out.parent if staging_name.startswith("../") else out) / staging_name.removeprefix("../")
        staging.mkdir(parents=True)
        (staging / "part-00000.parquet").write_bytes(b"rows")
        (staging / ".part-00000.parquet.crc").write_bytes(b"crc")  # Hadoop's local side file: never in S3
        # Spark commits seconds after its tasks wrote; files renamed within the instant their folder
        # appears can be missed by inotify (docs/emulator.md), which a Spark job never does.
        time.sleep(0.5)
        (out / "runs").mkdir(parents=True, exist_ok=True)
        staging.rename(out / "runs" / staging_name.removeprefix("../"))
        return 0

    monkeypatch.setattr(runner, "_execute", execute)
    cluster_id = start_cluster(aws)
    job = aws.pipeline_config["steps_uri"] + "sort_by_spending_score.py"
    (step_id,) = add_steps(
        aws, cluster_id, [command_step("staged", ["spark-submit", job, "--output", aws.pipeline_config["output_uri"]])]
    )
    (step,) = wait_for_steps(aws, cluster_id, [step_id], timeout=60)
    return step, cluster_id, output


def test_a_staging_folder_beside_the_output_prefix_is_denied_although_it_is_renamed_away(local_aws, monkeypatch):
    step, cluster_id, output = _staged_write(local_aws, monkeypatch, "../_tmp_beside")
    assert step["Status"]["State"] == "FAILED"
    staged = f"{output.stem.rsplit('/', 1)[0]}/_tmp_beside/part-00000.parquet"
    expected = (
        f"User: {instance_principal(local_aws)} is not authorized to perform: s3:PutObject "
        f"on resource: arn:aws:s3:::{output.bucket}/{staged}"
    )
    assert expected in step["Status"]["FailureDetails"]["Reason"]
    assert expected in (local_aws.step_log_dir(cluster_id, step["Id"]) / "stderr").read_text()


def test_a_staging_folder_under_the_output_prefix_is_put_then_deleted(local_aws, monkeypatch):
    step, cluster_id, output = _staged_write(local_aws, monkeypatch, "_tmp_under")
    assert step["Status"]["State"] == "COMPLETED"
    controller = (local_aws.step_log_dir(cluster_id, step["Id"]) / "controller").read_text()
    staged = f"s3://{output.bucket}/{output.stem}/_tmp_under/part-00000.parquet"
    assert f"uploaded: ['{staged}', " in controller and f"deleted: ['{staged}']" in controller
    assert ".crc" not in controller
    keys = local_aws.list_keys(f"s3://{output.bucket}/{output.stem}/")
    assert f"{output.stem}/runs/_tmp_under/part-00000.parquet" in keys
    assert f"{output.stem}/_tmp_under/part-00000.parquet" not in keys
