"""`make demo`: the embedded profile end to end (SQLite, LocalExecutor, one node)."""

import logging

import pytest

from rehearsal.run import Rehearsal

pytestmark = pytest.mark.rehearsal


def test_embedded_profile_runs_the_assignment(tmp_path):
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with Rehearsal("embedded", workdir=tmp_path / "embedded") as rehearsal:
        run = rehearsal.wait(rehearsal.trigger())
        assert rehearsal.success_problems(run) == [], run.log_report()
        # Every AWS call of the nodes was authorised against the synthesized template's node role.
        iam = rehearsal.aws.iam_report()
        assert iam["enforced"] and iam["calls"] > 0 and iam["denied"] == [], iam
        print(f"iam=enforced calls={iam['calls']} denied={len(iam['denied'])} setup={iam['setup_seconds']}s")
