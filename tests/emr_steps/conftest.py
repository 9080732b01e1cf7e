"""Fixtures for the EMR step code's tests: the Spark line of the configured EMR release."""

from __future__ import annotations

import pytest

from ..pipeline_support import SPARK_LINES, spark_environment


@pytest.fixture(scope="package", params=list(SPARK_LINES))
def spark_line(request):
    """The Spark (spark-submit, spark-sql, Python) of each line the EMR step code must run on."""
    return spark_environment(request.param)
