"""Which output line becomes a failed step's FailureDetails.Reason (real Spark/Python output shapes)."""

from __future__ import annotations

import pytest

from rehearsal.aws.step_runner import failure_reason

SPARK_SQL_NOT_FOUND = """\
26/11/23 21:23:04 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform
26/11/23 21:23:22 WARN ObjectStore: Failed to get database nope, returning NoSuchObjectException
[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope`.`t` cannot be found. Verify the spelling.
Search path: [`system`.`builtin`, `system`.`session`, `spark_catalog`.`default`].
To tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF EXISTS. SQLSTATE: 42P01; line 1 pos 14;
'Project [*]
+- 'UnresolvedRelation [nope, t], [], false
"""
PYTHON_TRACEBACK = """\
Traceback (most recent call last):
  File "/mirror/job.py", line 3, in <module>
    raise ValueError("score is not numeric")
ValueError: score is not numeric
"""


@pytest.mark.parametrize(
    ("stdout", "stderr", "reason"),
    [
        (
            "",
            SPARK_SQL_NOT_FOUND,
            "[TABLE_OR_VIEW_NOT_FOUND] The table or view `nope`.`t` cannot be found. Verify the spelling.",
        ),
        # spark-submit sends the Python driver's stderr to its stdout
        (
            PYTHON_TRACEBACK,
            "26/11/23 21:22:00 WARN NativeCodeLoader: no native-hadoop\n",
            "ValueError: score is not numeric",
        ),
        (
            "",
            "WARNING: Using incubator modules: jdk.incubator.vector\nerror: bad input in row 7\n",
            "error: bad input in row 7",
        ),
        ("done\n", "something unusual happened\n", "something unusual happened"),
        ("", "", "step command exited with status 137"),
    ],
)
def test_failure_reason_is_the_most_telling_line(tmp_path, stdout, stderr, reason):
    (tmp_path / "stdout").write_text(stdout)
    (tmp_path / "stderr").write_text(stderr)
    assert failure_reason(tmp_path / "stdout", tmp_path / "stderr", 137) == reason
