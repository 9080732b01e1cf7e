from __future__ import annotations

import pytest

from .emulator_support import DATASET, FIXTURE_STEPS, LocalAws


@pytest.fixture(scope="module")
def local_aws(tmp_path_factory):
    """One emulator per test module: moto's backends are process-wide, Spark JVMs are slow."""
    with LocalAws(
        tmp_path_factory.mktemp("local-aws"),
        dataset=DATASET,
        emr_steps_dir=FIXTURE_STEPS,
        poll_interval=0.2,
    ) as aws:
        yield aws
