"""Holding emulated API calls: what the worker-kill drill relies on to strike mid-task."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.fixture
def background():
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def test_a_held_call_waits_until_released_while_other_calls_go_through(local_aws, background):
    emr = local_aws.client("emr")
    with local_aws.hold("ListClusters") as held:
        listing = background.submit(emr.list_clusters)
        assert held.wait_arrived(30)
        assert held.count == 1
        local_aws.client("s3").list_buckets()  # other operations are not held
        emr.get_block_public_access_configuration()  # nor are the service's other operations
        assert not listing.done()
        held.release()
        assert "Clusters" in listing.result(timeout=30)


def test_leaving_the_block_releases_held_calls_and_stops_holding(local_aws, background):
    emr = local_aws.client("emr")
    with local_aws.hold("ListClusters") as held:
        listing = background.submit(emr.list_clusters)
        assert held.wait_arrived(30)
    assert "Clusters" in listing.result(timeout=30)
    assert "Clusters" in emr.list_clusters()  # no longer held
    assert held.count == 1


def test_an_operation_cannot_be_held_twice(local_aws):
    held_twice = pytest.raises(RuntimeError, match="ListClusters is already held")
    with local_aws.hold("ListClusters"), held_twice, local_aws.hold("ListClusters"):
        pass
    with local_aws.hold("ListClusters"):  # free again once the first block ended
        pass
