"""Fixtures for the rehearsal tests. The cluster deployment is started once per module and shared by the drills."""

from __future__ import annotations

import logging

import pytest

from rehearsal.run import Rehearsal


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three nodes, MariaDB, Redis, Celery, and a second scheduler so the scheduler drill has a survivor."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with Rehearsal("cluster", workdir=tmp_path_factory.mktemp("cluster"), scheduler_count=2) as rehearsal:
        yield rehearsal


def pytest_addoption(parser):
    parser.addoption(
        "--docs-screenshots",
        action="store_true",
        help="copy the UI test's screenshots into docs/ (tests/rehearsal/test_cluster.py)",
    )
