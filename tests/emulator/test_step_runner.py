"""Step runner state machine on emulated clusters, with steps that fail before Spark starts."""

from __future__ import annotations

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
    cluster_id = start_cluster(
        local_aws, keep_alive=False, Steps=[command_step("only", UNSUPPORTED, "CONTINUE")]
    )
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
    cluster_id = start_cluster(
        local_aws, JobFlowRole="NoSuchProfile", Steps=[command_step("never", UNSUPPORTED)]
    )
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
        S3Uri("c", "a.hql"), S3Uri("d", "in/"), S3Uri("c", "job.py"), S3Uri("d", "out/"),
    ]
    assert runner._locations_for(SimpleNamespace(id="j-OTHER"), spark) == [
        S3Uri("c", "job.py"), S3Uri("d", "out/"),
    ]
