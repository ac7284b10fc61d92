"""DAX's cache semantics, observed through the real client with a hand-moved clock.

Writes made straight to DynamoDB ("write-around") are invisible to the node, which is how these
tests tell a cached answer from a fresh one, exactly as AWS describes it:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DAX.consistency.html
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from daxlocal.cache import LruTtlCache
from tests.daxlocal.helpers import FakeClock

TTL_MS = 60_000


@pytest.fixture
def node(node_factory, clock):
    return node_factory(clock=clock, record_ttl_millis=TTL_MS, query_ttl_millis=TTL_MS)


def stats(node) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.stats_port}/stats") as response:
        return json.load(response)


def flush(node) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{node.stats_port}/flush", method="POST", data=b"")
    with urllib.request.urlopen(request) as response:
        assert json.load(response) == {"flushed": True}


def value(response) -> str | None:
    item = response.get("Item")
    return item["v"]["S"] if item else None


class Sample:
    """One item in the (S, N) table, read and written three ways."""

    def __init__(self, table, ddb, dax, uid) -> None:
        self.table, self.ddb, self.dax = table, ddb, dax
        self.key = table.key(uid, 1)
        self.uid = uid

    def write_around(self, v: str) -> None:
        self.ddb.put_item(TableName=self.table.name, Item={**self.key, "v": {"S": v}})

    def put(self, v: str) -> None:
        self.dax.put_item(TableName=self.table.name, Item={**self.key, "v": {"S": v}})

    def get(self, **kwargs) -> str | None:
        return value(self.dax.get_item(TableName=self.table.name, Key=self.key, **kwargs))

    def query(self, **kwargs) -> list[str]:
        response = self.dax.query(TableName=self.table.name, KeyConditionExpression="pk = :p",
                                  ExpressionAttributeValues={":p": self.key["pk"]}, **kwargs)
        return [item["v"]["S"] for item in response["Items"]]

    def scan(self) -> list[str]:
        response = self.dax.scan(TableName=self.table.name, FilterExpression="pk = :p",
                                 ExpressionAttributeValues={":p": self.key["pk"]})
        return [item["v"]["S"] for item in response["Items"]]


@pytest.fixture
def sample(node, composite_table, ddb, uid):
    return Sample(composite_table, ddb, node[1], uid)


# ------------------------------------------------------------------------------ item cache

def test_item_cache_hit_serves_the_cached_item_until_ttl_expiry(node, sample, clock):
    sample.write_around("v1")
    assert sample.get() == "v1"
    sample.write_around("v2")
    assert sample.get() == "v1"  # hit: the node did not see the write-around
    clock.advance(TTL_MS / 1000 - 1)
    assert sample.get() == "v1"
    clock.advance(2)
    assert sample.get() == "v2"  # expired entries count as misses
    counters = stats(node[0])
    assert (counters["ItemCacheMisses"], counters["ItemCacheHits"]) == (2, 2)
    assert counters["GetItemRequestCount"] == 4


def test_record_ttl_zero_means_items_never_expire(node_factory, composite_table, ddb, uid, clock):
    _, dax = node_factory(clock=clock, record_ttl_millis=0)
    sample = Sample(composite_table, ddb, dax, uid)
    sample.write_around("v1")
    assert sample.get() == "v1"
    sample.write_around("v2")
    clock.advance(10 * 365 * 24 * 3600)
    assert sample.get() == "v1"


def test_missing_item_is_cached_as_a_negative_entry(node, sample, clock):
    assert sample.get() is None
    sample.write_around("v1")
    assert sample.get() is None  # the negative entry hides the write-around
    clock.advance(TTL_MS / 1000 + 1)
    assert sample.get() == "v1"
    assert stats(node[0])["ItemCacheHits"] == 1


def test_write_through_replaces_a_negative_entry(node, sample):
    assert sample.get() is None
    sample.put("v1")
    assert sample.get() == "v1"
    assert stats(node[0])["ItemCacheMisses"] == 1  # the second read never went to DynamoDB


@pytest.mark.parametrize("return_values", ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"])
def test_update_through_the_node_refreshes_the_item_cache(node, sample, return_values):
    sample.write_around("v1")
    assert sample.get() == "v1"
    sample.dax.update_item(TableName=sample.table.name, Key=sample.key, UpdateExpression="SET v = :v",
                           ExpressionAttributeValues={":v": {"S": "v2"}}, ReturnValues=return_values)
    assert sample.get() == "v2"
    assert stats(node[0])["ItemCacheMisses"] == 1


def test_delete_through_the_node_leaves_a_negative_entry(node, sample):
    sample.put("v1")
    sample.dax.delete_item(TableName=sample.table.name, Key=sample.key)
    sample.write_around("v2")
    assert sample.get() is None
    assert stats(node[0])["ItemCacheMisses"] == 0


def test_failed_conditional_write_leaves_the_cache_alone(node, sample):
    sample.put("v1")
    with pytest.raises(Exception):
        sample.dax.put_item(TableName=sample.table.name, Item={**sample.key, "v": {"S": "v2"}},
                            ConditionExpression="attribute_not_exists(pk)")
    assert sample.get() == "v1"
    assert stats(node[0])["ErrorRequestCount"] >= 1


def test_numerically_equal_keys_share_one_cache_entry(node, composite_table, ddb, uid):
    dax = node[1]
    dax.put_item(TableName=composite_table.name, Item={"pk": {"S": uid}, "sk": {"N": "80"}, "v": {"S": "x"}})
    for spelling in ("80", "8E+1", "80.0", "0.8e2"):
        got = dax.get_item(TableName=composite_table.name, Key={"pk": {"S": uid}, "sk": {"N": spelling}})
        assert got["Item"]["v"] == {"S": "x"}
    assert stats(node[0])["ItemCacheMisses"] == 0


def test_batch_get_item_uses_the_item_cache_per_key(node, sample, composite_table, uid):
    sample.write_around("v1")
    assert sample.get() == "v1"
    sample.write_around("v2")
    other = composite_table.key(uid, 2)
    response = sample.dax.batch_get_item(RequestItems={composite_table.name: {"Keys": [sample.key, other]}})
    assert [i["v"]["S"] for i in response["Responses"][composite_table.name]] == ["v1"]
    counters = stats(node[0])
    assert (counters["ItemCacheHits"], counters["ItemCacheMisses"]) == (1, 2)


def test_lru_evicts_least_recently_used_items_by_size(node_factory, composite_table, ddb, uid, clock):
    node, dax = node_factory(clock=clock, item_cache_bytes=1_500)  # room for two of the ~700-byte items
    samples = [Sample(composite_table, ddb, dax, f"{uid}-{i}") for i in range(3)]
    for s in samples:
        s.write_around("x" * 600)
    samples[0].get()
    samples[1].get()
    samples[0].get()  # 0 is now more recently used than 1
    samples[2].get()  # over budget: evicts 1
    assert stats(node)["ItemCacheMisses"] == 3
    samples[0].get()
    assert stats(node)["ItemCacheMisses"] == 3
    samples[1].get()
    assert stats(node)["ItemCacheMisses"] == 4
    assert stats(node)["EvictedSize"] > 0


# ------------------------------------------------------------------------------ pass-through reads

def test_consistent_get_passes_through_and_does_not_touch_the_cache(node, sample):
    sample.write_around("v1")
    assert sample.get() == "v1"
    sample.write_around("v2")
    assert sample.get(ConsistentRead=True) == "v2"
    assert sample.get() == "v1"  # the strongly consistent read did not refresh the entry
    counters = stats(node[0])
    assert (counters["ItemCacheHits"], counters["ItemCacheMisses"]) == (1, 1)


def test_consistent_query_passes_through(node, sample):
    sample.write_around("v1")
    assert sample.query() == ["v1"]
    sample.write_around("v2")
    assert sample.query(ConsistentRead=True) == ["v2"]
    assert sample.query() == ["v1"]
    assert stats(node[0])["QueryCacheMisses"] == 1


def test_transact_get_items_passes_through_and_does_not_fill_the_cache(node, sample):
    sample.write_around("v1")
    assert sample.get() == "v1"
    sample.write_around("v2")
    response = sample.dax.transact_get_items(TransactItems=[{"Get": {"TableName": sample.table.name,
                                                                     "Key": sample.key}}])
    assert response["Responses"][0]["Item"]["v"] == {"S": "v2"}
    assert sample.get() == "v1"


def test_query_and_scan_results_do_not_populate_the_item_cache(node, sample):
    sample.write_around("v1")
    assert sample.query() == ["v1"]
    assert sample.scan() == ["v1"]
    sample.write_around("v2")
    assert sample.get() == "v2"


# ------------------------------------------------------------------------------ query cache

def test_query_cache_is_stale_after_a_write_through_until_ttl(node, sample, clock):
    sample.put("v1")
    assert sample.query() == ["v1"]
    sample.put("v2")  # writes update the item cache, never the query cache
    assert sample.get() == "v2"
    assert sample.query() == ["v1"]
    assert sample.query(Limit=5) == ["v2"]  # different parameters, different entry
    clock.advance(TTL_MS / 1000 + 1)
    assert sample.query() == ["v2"]
    counters = stats(node[0])
    assert (counters["QueryCacheHits"], counters["QueryCacheMisses"]) == (1, 3)


def test_query_cache_ignores_return_consumed_capacity_in_its_key(node, sample):
    sample.put("v1")
    assert sample.query() == ["v1"]
    sample.put("v2")
    assert sample.query(ReturnConsumedCapacity="TOTAL") == ["v1"]


def test_empty_query_results_are_cached(node, sample):
    assert sample.query() == []
    sample.put("v1")
    assert sample.query() == []


def test_scan_results_are_cached_separately(node, sample, clock):
    sample.put("v1")
    assert sample.scan() == ["v1"]
    sample.put("v2")
    assert sample.scan() == ["v1"]
    clock.advance(TTL_MS / 1000 + 1)
    assert sample.scan() == ["v2"]
    counters = stats(node[0])
    assert (counters["ScanCacheHits"], counters["ScanCacheMisses"]) == (1, 2)


def test_query_ttl_zero_means_results_are_not_cached(node_factory, composite_table, ddb, uid):
    node, dax = node_factory(query_ttl_millis=0)
    sample = Sample(composite_table, ddb, dax, uid)
    sample.put("v1")
    assert sample.query() == ["v1"]
    sample.put("v2")
    assert sample.query() == ["v2"]
    assert stats(node)["QueryCacheHits"] == 0


# ------------------------------------------------------------------------------ transactions

def _tx_put(sample, v: str) -> None:
    sample.dax.transact_write_items(TransactItems=[
        {"Put": {"TableName": sample.table.name, "Item": {**sample.key, "v": {"S": v}}}}])


def test_transact_write_refreshes_written_items_before_replying_by_default(node, sample):
    sample.put("v1")
    _tx_put(sample, "v2")
    assert sample.get() == "v2"
    assert stats(node[0])["ItemCacheMisses"] == 0  # served by the refreshed entry


def test_transact_write_with_a_refresh_delay_serves_the_old_item_meanwhile(node_factory, composite_table, ddb, uid):
    _, dax = node_factory(tx_refresh_delay_ms=600_000)
    sample = Sample(composite_table, ddb, dax, uid)
    sample.put("v1")
    _tx_put(sample, "v2")
    assert sample.get() == "v1"  # the background refresh has not run yet
    assert sample.get(ConsistentRead=True) == "v2"


def test_transact_write_background_refresh_eventually_updates_the_item_cache(node_factory, composite_table, ddb,
                                                                              uid):
    node, dax = node_factory(tx_refresh_delay_ms=50)
    sample = Sample(composite_table, ddb, dax, uid)
    sample.put("v1")
    _tx_put(sample, "v2")
    deadline = time.monotonic() + 10
    while sample.get() != "v2":
        assert time.monotonic() < deadline, "the background refresh never updated the item cache"
        time.sleep(0.05)
    assert stats(node)["ItemCacheMisses"] == 0


def test_a_fill_started_before_a_write_through_does_not_overwrite_it():
    """A miss fill (or transaction refresh) that read DynamoDB before a later write-through loses to it."""
    cache = LruTtlCache(max_bytes=10_000, ttl_seconds=60, clock=FakeClock())
    stamp = cache.stamp()  # the fill's DynamoDB read starts here...
    cache.put("k", "written-through", 10)  # ...a write-through lands meanwhile...
    assert not cache.fill("k", "old-from-dynamodb", 10, since=stamp)  # ...and the late fill is dropped
    assert cache.get("k") == "written-through"
    assert cache.fill("k", "newer", 10, since=cache.stamp())


# ------------------------------------------------------------------------------ admin surface

def test_flush_empties_both_caches(node, sample):
    sample.put("v1")
    assert sample.query() == ["v1"]
    sample.write_around("v2")
    flush(node[0])
    assert sample.get() == "v2"
    assert sample.query() == ["v2"]


def test_stats_report_cloudwatch_named_counters(node, sample):
    sample.put("v1")
    sample.get()
    sample.query()
    counters = stats(node[0])
    for name in ("ItemCacheHits", "ItemCacheMisses", "QueryCacheHits", "QueryCacheMisses", "ScanCacheHits",
                 "ScanCacheMisses", "GetItemRequestCount", "PutItemRequestCount", "QueryRequestCount",
                 "TransactWriteItemsCount", "TotalRequestCount", "ErrorRequestCount"):
        assert isinstance(counters[name], int), name
    assert counters["TotalRequestCount"] == 3
    assert counters["PutItemRequestCount"] == counters["GetItemRequestCount"] == counters["QueryRequestCount"] == 1
    assert counters["Control"]["endpoints"] >= 1
    assert counters["Config"]["record-ttl-millis"] == TTL_MS


def test_unknown_admin_paths_are_404(node):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{node[0].stats_port}/nope")
    assert err.value.code == 404


def test_concurrent_clients_threads_read_their_own_writes(node, composite_table, uid):
    """One client shared by 8 threads (separate connections): every write is read back through the cache."""
    from concurrent.futures import ThreadPoolExecutor

    server, dax = node

    def worker(n: int) -> int:
        for i in range(20):
            key = composite_table.key(f"{uid}-{n}", i)
            dax.put_item(TableName=composite_table.name, Item={**key, "v": {"S": f"{n}-{i}"}})
            assert dax.get_item(TableName=composite_table.name, Key=key)["Item"]["v"] == {"S": f"{n}-{i}"}
        return n

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(worker, range(8))) == list(range(8))
    counters = stats(server)
    assert counters["ItemCacheHits"] == 160 and counters["ItemCacheMisses"] == 0
    assert counters["ErrorRequestCount"] == 0


def test_encoded_memo_answers_the_same_object_from_its_bytes_and_never_a_replaced_one():
    from daxlocal.handlers import EncodedMemo

    memo = EncodedMemo(max_bytes=64)
    calls = []

    def enc(tag):
        def encode():
            calls.append(tag)
            return tag.encode() * 8
        return encode

    first = {"v": {"N": "1"}}
    assert memo.get(("values", "t"), first, enc("a")) == b"a" * 8
    assert memo.get(("values", "t"), first, enc("b")) == b"a" * 8  # a hit: not encoded again
    second = {"v": {"N": "2"}}  # what a write stores: a new object
    assert memo.get(("values", "t"), second, enc("c")) == b"c" * 8
    assert calls == ["a", "c"]
    for i in range(20):  # bounded by bytes: the oldest go
        memo.get(("values", "t"), {"i": i}, enc("d"))
    assert memo.get(("values", "t"), first, enc("e")) == b"e" * 8
    memo.enabled = False
    assert memo.get(("values", "t"), second, enc("f")) == b"f" * 8
