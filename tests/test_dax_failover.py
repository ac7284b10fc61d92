"""The DAX leader dies under the app's own load: nothing reaches the app's callers.

A 3-node local DAX cluster (separate processes) in front of DynamoDB Local; the app points at
every node (``DAX_ENDPOINTS``) and runs its real read path (``context_load``, the Redis entry
deleted before each so the store is read) and write path (``turn_append``) from threads while the
leader's process is SIGKILLed. The procedure is bench scenario 10's (``bench.s10_failover.drive``),
so the figures the README quotes and this test come from one piece of code.
"""

from __future__ import annotations

import pytest

from bench.s10_failover import drive
from devtools.dax import start_dax_cluster



@pytest.fixture
def cluster(infra):
    cluster = start_dax_cluster(0, size=3, dynamodb_endpoint=infra["dynamodb_endpoint"], stats_port=0,
                                log=infra["logs"] / "dax-failover-cluster.log")
    yield cluster
    cluster.stop()


def test_leader_killed_under_reads_and_appends(cluster, ddb, settings):
    from sessions_app.services.sessions import session_start

    ids = []
    for i in range(6):
        meta, _ = session_start(customer_id=f"fo-cust-{i}", channel="web")
        ids.append(meta.session_id)
    # Production's 1 s DAX timeout on a starved CI box would only add fallbacks (absorbed too),
    # not change what is checked; the breaker's reset is shortened so "writes through DAX again"
    # is reached well within the test's bound.
    settings.DAX_BREAKER_RESET_SECONDS = 1.0
    # The writers append as fast as they can for as long as the failover takes: the customers'
    # rate limit (30 a minute) would refuse them after a few seconds, whatever DAX does. The
    # limiter has tests of its own; here it is set out of reach, as bench scenario 10's stack does.
    settings.RATE_LIMIT_TURNS = 100_000_000

    out = drive(cluster, ids, readers=2, writers=3, warm_seconds=1.5, max_seconds=45.0, settle_seconds=1.0)

    assert out["client_visible_errors"] == 0, out["error_examples"]
    assert out["new_leader"] is not None and out["new_leader"] != out["old_leader"]
    assert out["seconds_to_new_leader"] is not None and out["seconds_to_new_leader"] <= 30
    # Reads were served all along, and appends went through DAX again after the election.
    assert out["reads_total"] > 0 and sum(out["during_failover"]["read"].values()) > 0
    assert out["seconds_until_writes_via_dax"] is not None
    assert out["acknowledged_lost"] == 0
    assert out["client_msg_ids_stored_twice"] == 0
    assert out["old_leader_rejoined_as_replica"]
