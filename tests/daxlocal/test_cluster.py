"""A 3-node local DAX cluster (separate processes) and the unmodified amazondax client.

docs/dax-protocol.md §Cluster: membership and the leader lease live in DynamoDB; writes reach the
leader (forwarded by a replica); the leader's item-cache stores replicate to the replicas; a
killed leader is replaced through the lease and comes back as a replica.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid

import pytest
from amazondax import AmazonDaxClient

from daxlocal.cluster import ClusterConfig, _query_all
from devtools.dax import start_dax_cluster

# Shorter than the defaults (0.5 s / 3 s / 3 s) so elections are quick, yet several heartbeats
# long, so a starved CI box (slow DynamoDB Local answers) does not see members vanish.
FAST = ["--heartbeat-ms", "250", "--lease-ms", "2000", "--member-timeout-ms", "2000"]


def stats(node) -> dict:
    with urllib.request.urlopen(node.stats_url, timeout=2) as response:
        return json.loads(response.read())


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s")


@pytest.fixture
def table(ddb):
    name = f"cl-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    return name


def start(infra, *extra):
    return start_dax_cluster(0, size=3, dynamodb_endpoint=infra["dynamodb_endpoint"], stats_port=0,
                             extra_args=[*FAST, *extra], log=infra["logs"] / "dax-cluster-tests.log")


@pytest.fixture
def cluster(infra):
    cluster = start(infra)
    yield cluster
    cluster.stop()


@pytest.fixture
def client(cluster):
    client = AmazonDaxClient(endpoints=cluster.endpoints, region_name="us-east-1",
                             aws_access_key_id="local", aws_secret_access_key="local")
    yield client
    client.close()


def test_endpoints_list_one_leader_and_two_replicas(cluster, client):
    leader = cluster.wait_for_leader()
    # The client's own view: what its endpoint refresh learned from a seed.
    endpoints = client._cluster._router.backends  # addrport -> backend (amazondax internals, read only)
    roles = sorted(b.role for b in endpoints.values())
    assert roles == [1, 2, 2]
    assert sorted(a.port for a in endpoints) == sorted(n.port for n in cluster.nodes)
    views = [n.cluster_view() for n in cluster.nodes]
    assert {v["AvailabilityZone"] for v in views} == {"local-1a", "local-1b", "local-1c"}
    assert [v["Role"] for v in views].count("leader") == 1
    assert all(v["LeaderNodeId"] == leader.node_id for v in views)


def test_reads_spread_writes_reach_only_the_leader_and_replicate(cluster, client, table):
    leader = cluster.wait_for_leader()
    for i in range(30):
        client.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
    for round_ in range(3):
        for i in range(30):
            got = client.get_item(TableName=table, Key={"pk": {"S": f"k{i}"}})
            assert got["Item"]["v"] == {"N": str(i)}
    by_node = {n.node_id: stats(n) for n in cluster.nodes}
    # Every write went to DynamoDB through the leader alone.
    assert by_node[leader.node_id]["PutItemRequestCount"] >= 30
    for node_id, s in by_node.items():
        if node_id != leader.node_id:
            assert s["Cluster"]["ForwardedWrites"] == s["PutItemRequestCount"]
    # Reads spread over the nodes; replicas answer from what the leader replicated (no misses).
    assert all(s["GetItemRequestCount"] > 0 for s in by_node.values())
    replicas = [s for node_id, s in by_node.items() if node_id != leader.node_id]
    assert all(s["Cluster"]["Replication"]["AppliedEntries"] >= 30 for s in replicas)
    assert sum(s["ItemCacheMisses"] for s in by_node.values()) == 0


def test_a_write_sent_to_a_replica_is_forwarded_to_the_leader(cluster, table):
    leader = cluster.wait_for_leader()
    replica = next(n for n in cluster.nodes if n is not leader)
    # A client seeded with the replica alone still learns the leader, so force the route: the
    # router's leader choice falls back to any node only without a leader route, as in a failover.
    client = AmazonDaxClient(endpoints=[replica.endpoint], region_name="us-east-1",
                             aws_access_key_id="local", aws_secret_access_key="local")
    try:
        # The client sends writes to a replica only when it has no leader route (a failover);
        # make that so for this client alone, through its own per-node client (amazondax internals).
        router = client._cluster._router
        backend = next(b for a, b in router.backends.items() if a.port == replica.port)
        client._cluster.write_client = lambda prev=None: backend.fetch_client()
        before = stats(replica)["Cluster"]["ForwardedWrites"]
        client.put_item(TableName=table, Item={"pk": {"S": "via-replica"}, "v": {"S": "x"}})
        assert stats(replica)["Cluster"]["ForwardedWrites"] == before + 1
        # A failed condition travels back from the leader as the same exception.
        with pytest.raises(Exception) as caught:
            client.put_item(TableName=table, Item={"pk": {"S": "via-replica"}, "v": {"S": "y"}},
                            ConditionExpression="attribute_not_exists(pk)")
        assert "ConditionalCheckFailed" in type(caught.value).__name__ + str(caught.value)
    finally:
        client.close()
    assert stats(leader)["PutItemRequestCount"] >= 2


def test_replication_delay_bounds_replica_staleness(infra, table):
    cluster = start(infra, "--replication-delay-ms", "700")
    try:
        leader = cluster.wait_for_leader()
        replica = next(n for n in cluster.nodes if n is not leader)
        lead = AmazonDaxClient(endpoints=[leader.endpoint], region_name="us-east-1",
                               aws_access_key_id="local", aws_secret_access_key="local")
        try:
            lead.put_item(TableName=table, Item={"pk": {"S": "slow"}, "v": {"N": "1"}})
            written = time.monotonic()
            replica_view = stats(replica)["Cluster"]["Replication"]
            assert replica_view["AppliedEntries"] == 0  # not yet: the link is modelled slow
            wait_for(lambda: stats(replica)["Cluster"]["Replication"]["AppliedEntries"] >= 1, timeout=10)
            arrived = time.monotonic() - written
            assert arrived >= 0.6  # never before the modelled delay...
            assert arrived < 5.0  # ...and bounded by it plus a send
        finally:
            lead.close()
    finally:
        cluster.stop()


def test_leader_killed_under_load_new_leader_no_lost_write(cluster, client, table, ddb):
    """Reads and writes from threads; the leader is SIGKILLed. A thin wrapper does what the app's
    routed connection does (on a DAX error, the same call on DynamoDB); what it could not absorb
    counts as an error reaching a caller."""
    leader = cluster.wait_for_leader()
    acknowledged: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def call(method: str, **kwargs):
        try:
            return getattr(client, method)(**kwargs)
        except Exception:
            return getattr(ddb, method)(**kwargs)  # the fallback

    def writer(w: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"w{w}-{n}"
            try:
                call("put_item", TableName=table, Item={"pk": {"S": key}, "v": {"N": str(n)}})
            except Exception as exc:
                with lock:
                    errors.append(repr(exc))
                continue
            with lock:
                acknowledged.append(key)

    def reader() -> None:
        while not stop.is_set():
            with lock:
                keys = acknowledged[-20:]
            for key in keys:
                try:
                    call("get_item", TableName=table, Key={"pk": {"S": key}})
                except Exception as exc:
                    with lock:
                        errors.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + \
              [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acknowledged) > 30)
        pid = cluster.kill(leader)
        killed_at = time.monotonic()
        new_leader = cluster.wait_for_leader(exclude=leader, timeout=30)
        elected_after = time.monotonic() - killed_at
        # Writes go through DAX again: the new leader's own PutItem count grows.
        base = stats(new_leader)["PutItemRequestCount"]
        wait_for(lambda: stats(new_leader)["PutItemRequestCount"] > base + 5, timeout=30)
        assert cluster.wait_for_rejoin(leader, killed_pid=pid, timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    assert elected_after < 15  # lease 2 s + heartbeats; generous for a starved CI box
    for i in range(0, len(acknowledged), 100):
        keys = [{"pk": {"S": k}} for k in acknowledged[i:i + 100]]
        got = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
        assert len(got["Responses"][table]) == len(keys) and not got.get("UnprocessedKeys")
    # The restarted old leader is a replica now; exactly one leader remains.
    roles = [n.cluster_view()["Role"] for n in cluster.nodes]
    assert roles.count("leader") == 1


def test_two_takeovers_of_one_expired_lease_have_one_winner(ddb):
    """The lease's conditional write on the observed counter: of two nodes that both saw the same
    expired lease, exactly one takes it."""
    from daxlocal.cache import LruTtlCache
    from daxlocal.cluster import Cluster, _ensure_table

    config = ClusterConfig(name=f"race-{uuid.uuid4().hex[:6]}", table="daxlocal-cluster-tests", lease_seconds=0.2,
                           heartbeat_seconds=0.05)
    nodes = []
    for index in (0, 1):
        cfg = ClusterConfig(**{**config.__dict__, "index": index})
        nodes.append(Cluster(cfg, dynamodb=ddb, advertise_address="127.0.0.1", port=1 + index, stats_port=None,
                             item_cache=LruTtlCache(max_bytes=1 << 20, ttl_seconds=0), dispatch=lambda m, a: b""))
    _ensure_table(ddb, config.table)
    key = {"pk": {"S": config.name}, "sk": {"S": "lease"}}
    ddb.put_item(TableName=config.table, Item={**key, "owner": {"S": "gone"}, "counter": {"N": "7"}})
    barrier = threading.Barrier(2)
    results = []

    def take(node) -> None:
        barrier.wait()
        results.append(node._try_lease(key, None, 8, "#c = :c", {":c": {"N": "7"}}))

    threads = [threading.Thread(target=take, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    owner = _lease(ddb, config)["owner"]["S"]
    assert owner in {n.incarnation for n in nodes}
    for node in nodes:
        node._peer.server_close()


def _lease(ddb, config):
    return next(i for i in _query_all(ddb, config.table, config.name) if i["sk"]["S"] == "lease")
