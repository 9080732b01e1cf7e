"""Leaving the LocalAws context kills a running step's processes and ends the step (one JVM start)."""

from __future__ import annotations

import os

from rehearsal.aws import LocalAws

from .emulator_support import DATASET, FIXTURE_STEPS, command_step, start_cluster, wait_for


def test_leaving_the_context_kills_the_running_step(tmp_path):
    pid_file = tmp_path / "sleep.pid"
    with LocalAws(tmp_path / "aws", dataset=DATASET, emr_steps_dir=FIXTURE_STEPS, poll_interval=0.2) as aws:
        cluster_id = start_cluster(aws)
        aws.client("emr").add_job_flow_steps(
            JobFlowId=cluster_id,
            Steps=[
                command_step("long", ["spark-submit", aws.pipeline_config["steps_uri"] + "sleep.py", str(pid_file)])
            ],
        )
        wait_for(pid_file.exists, timeout=300, what="the long step to start")
        pid = int(wait_for(lambda: pid_file.read_text().strip(), timeout=10))
    (cluster,) = aws.clusters()
    (step,) = cluster["steps"]

    assert step["state"] == "CANCELLED"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"step process {pid} survived the emulator")
    assert step["state_change_reason"] == "The emulator stopped while the step was running"
