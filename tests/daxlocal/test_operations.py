"""Every method through the real `amazondax` client, compared with the same request sent to DynamoDB Local.

Reads are compared directly. Writes are run twice from the same starting state, once through the
node and once straight to DynamoDB, and both the responses and the resulting items must agree.
Each test works in its own partitions, so the shared node's caches never mix tests.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.daxlocal.helpers import norm, outcome, pages, rich_item, strip_capacity_units

COMPOSITE = ["SN", "NB", "BS"]


def _get(ddb, table, key):
    return ddb.get_item(TableName=table.name, Key=key, ConsistentRead=True).get("Item")


def check_write(dax, ddb, table, key, initial, op, **kwargs):
    """Same write through DAX and directly, each from ``initial`` (None = absent): same outcome, same item."""

    def reset():
        ddb.delete_item(TableName=table.name, Key=key)
        if initial is not None:
            ddb.put_item(TableName=table.name, Item=initial)

    reset()
    via_dax = outcome(getattr(dax, op), TableName=table.name, **kwargs)
    after_dax = _get(ddb, table, key)
    reset()
    direct = outcome(getattr(ddb, op), TableName=table.name, **kwargs)
    after_direct = _get(ddb, table, key)
    if "ReturnConsumedCapacity" not in kwargs and direct[0] == "ok":
        direct[1].pop("ConsumedCapacity", None)  # DynamoDB Local sends it unasked; the client drops it
    assert via_dax == direct
    assert norm(after_dax) == norm(after_direct)
    return via_dax


# ---------------------------------------------------------------------------------------- GetItem

GET_OPTIONS = {
    "plain": {},
    "consistent": {"ConsistentRead": True},
    "projection": {"ProjectionExpression": "#s, l[1].x, m.nested, ns, absent, l[7]",
                   "ExpressionAttributeNames": {"#s": "s"}},
    "projection-nothing-present": {"ProjectionExpression": "absent"},
    "consistent-projection": {"ConsistentRead": True, "ProjectionExpression": "b, m.a"},
}


@pytest.mark.parametrize("options", list(GET_OPTIONS.values()), ids=list(GET_OPTIONS))
def test_get_item_matches_dynamodb(dax, ddb, table, uid, options):
    written_via_dax, written_direct = table.key(uid + "a", 1), table.key(uid + "b", 2)
    dax.put_item(TableName=table.name, Item=rich_item(table, uid + "a", 1))  # cached by write-through
    ddb.put_item(TableName=table.name, Item=rich_item(table, uid + "b", 2))  # fetched on a miss
    for key in (written_via_dax, written_direct, written_direct, table.key(uid + "missing", 3)):
        assert norm(dax.get_item(TableName=table.name, Key=key, **options)) == \
            norm(ddb.get_item(TableName=table.name, Key=key, **options))


def test_get_item_with_overlapping_projection_is_rejected_like_dynamodb(dax, ddb, table, uid):
    options = {"TableName": table.name, "Key": table.key(uid), "ProjectionExpression": "m, m.a"}
    assert outcome(dax.get_item, **options) == outcome(ddb.get_item, **options) == ("error", "ValidationException")


def test_get_item_on_unknown_table_is_resource_not_found(dax):
    with pytest.raises(ClientError) as err:
        dax.get_item(TableName="no-such-table", Key={"pk": {"S": "x"}})
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


# ---------------------------------------------------------------------------------------- PutItem

@pytest.mark.parametrize("exists", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("return_values", ["NONE", "ALL_OLD"])
def test_put_item_matches_dynamodb(dax, ddb, table, uid, exists, return_values):
    key = table.key(uid)
    initial = rich_item(table, uid) if exists else None
    check_write(dax, ddb, table, key, initial, "put_item", Item={**key, "v": {"N": "1"}, "s": {"S": "new"}},
                ReturnValues=return_values)


@pytest.mark.parametrize("condition, expected", [
    ("attribute_not_exists(pk)", "error"),
    ("attribute_exists(pk) AND s = :s", "ok"),
    ("size(#l) > :two OR contains(ss, :nope)", "ok"),
    ("NOT (neg IN (:a, :b)) AND n BETWEEN :lo AND :hi", "ok"),
    ("begins_with(s, :nope)", "error"),
])
def test_conditional_put_matches_dynamodb(dax, ddb, table, uid, condition, expected):
    key = table.key(uid)
    initial = rich_item(table, uid)
    values = {":s": initial["s"], ":two": {"N": "2"}, ":nope": {"S": "zzz"}, ":a": {"N": "1"}, ":b": {"N": "2"},
              ":lo": {"N": "10"}, ":hi": {"N": "13"}}
    used = {k: v for k, v in values.items() if k in condition}
    extra = {"ExpressionAttributeNames": {"#l": "l"}} if "#l" in condition else {}
    if used:
        extra["ExpressionAttributeValues"] = used
    result = check_write(dax, ddb, table, key, initial, "put_item", Item={**key, "v": {"S": "x"}},
                         ConditionExpression=condition, **extra)
    assert result[0] == expected
    if expected == "error":
        assert result[1] == "ConditionalCheckFailedException"


# ---------------------------------------------------------------------------------------- UpdateItem

UPDATES = {
    "arithmetic-and-remove": ("SET n = n + :one, neg = neg - :one REMOVE t, m.nested", {":one": {"N": "1"}}),
    "functions": ("SET created = if_not_exists(created, :now), l = list_append(l, :more), #s = :s",
                  {":now": {"N": "5"}, ":more": {"L": [{"S": "z"}]}, ":s": {"S": "updated"}}),
    "sets-and-nested": ("ADD ss :add, hits :one DELETE ns :del SET m.a = :s, l[0] = :s",
                        {":add": {"SS": ["c"]}, ":one": {"N": "1"}, ":del": {"NS": ["1"]}, ":s": {"S": "v"}}),
}


@pytest.mark.parametrize("return_values", ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"])
@pytest.mark.parametrize("update", list(UPDATES), ids=list(UPDATES))
def test_update_item_matches_dynamodb(dax, ddb, table, uid, update, return_values):
    expression, values = UPDATES[update]
    key = table.key(uid)
    names = {"#s": "s"} if "#s" in expression else {}
    check_write(dax, ddb, table, key, rich_item(table, uid), "update_item", Key=key, UpdateExpression=expression,
                ExpressionAttributeValues=values, ReturnValues=return_values,
                **({"ExpressionAttributeNames": names} if names else {}))


@pytest.mark.parametrize("return_values", ["ALL_OLD", "ALL_NEW", "UPDATED_NEW"])
def test_update_of_absent_item_creates_it_like_dynamodb(dax, ddb, composite_table, uid, return_values):
    key = composite_table.key(uid)
    check_write(dax, ddb, composite_table, key, None, "update_item", Key=key,
                UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"S": "x"}},
                ReturnValues=return_values)


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "absent"])
def test_conditional_update_matches_dynamodb(dax, ddb, composite_table, uid, exists):
    key = composite_table.key(uid)
    check_write(dax, ddb, composite_table, key, rich_item(composite_table, uid) if exists else None, "update_item",
                Key=key, UpdateExpression="SET v = :v", ConditionExpression="attribute_exists(pk) AND neg < :z",
                ExpressionAttributeValues={":v": {"S": "x"}, ":z": {"N": "0"}}, ReturnValues="ALL_NEW")


def test_invalid_update_is_a_validation_error_like_dynamodb(dax, ddb, composite_table, uid):
    key = composite_table.key(uid)
    result = check_write(dax, ddb, composite_table, key, rich_item(composite_table, uid), "update_item", Key=key,
                         UpdateExpression="SET s = s + :one", ExpressionAttributeValues={":one": {"N": "1"}})
    assert result == ("error", "ValidationException")


# ---------------------------------------------------------------------------------------- DeleteItem

@pytest.mark.parametrize("exists", [True, False], ids=["existing", "absent"])
@pytest.mark.parametrize("return_values", ["NONE", "ALL_OLD"])
def test_delete_item_matches_dynamodb(dax, ddb, table, uid, exists, return_values):
    key = table.key(uid)
    check_write(dax, ddb, table, key, rich_item(table, uid) if exists else None, "delete_item", Key=key,
                ReturnValues=return_values)


def test_conditional_delete_matches_dynamodb(dax, ddb, table, uid):
    key = table.key(uid)
    result = check_write(dax, ddb, table, key, rich_item(table, uid), "delete_item", Key=key,
                         ConditionExpression="s = :other", ExpressionAttributeValues={":other": {"S": "other"}})
    assert result == ("error", "ConditionalCheckFailedException")


# ---------------------------------------------------------------------------------------- Query

def _seed(ddb, table, uid, n=7):
    for sort in range(n):
        ddb.put_item(TableName=table.name, Item=rich_item(table, uid, sort))


def _query_variants(table, uid):
    names = {"#p": "pk", "#k": "sk"}
    p = table.partition(uid)["pk"]
    low, high = table.key(uid, 2)["sk"], table.key(uid, 5)["sk"]
    prefix = {"S": {"S": "000"}, "B": {"B": b"000"}}.get(table.range[1])
    base = {"KeyConditionExpression": "#p = :p", "ExpressionAttributeNames": {"#p": "pk"},
            "ExpressionAttributeValues": {":p": p}}
    ranged = {"ExpressionAttributeNames": names}
    variants = {
        "partition": base,
        "greater": {**ranged, "KeyConditionExpression": "#p = :p AND #k > :lo",
                    "ExpressionAttributeValues": {":p": p, ":lo": low}},
        "between-backwards": {**ranged, "KeyConditionExpression": "#p = :p AND #k BETWEEN :lo AND :hi",
                              "ExpressionAttributeValues": {":p": p, ":lo": min(low, high, key=_order),
                                                            ":hi": max(low, high, key=_order)},
                              "ScanIndexForward": False},
        "limit-pages": {**base, "Limit": 2},
        "filter-pages": {**base, "Limit": 3, "FilterExpression": "kind = :k AND attribute_exists(ss)",
                         "ExpressionAttributeValues": {":p": p, ":k": {"S": f"{uid}-k1"}}},
        "projection": {**base, "ProjectionExpression": "#p, kind, l[1].x, m.a, ns"},
        "count": {**base, "Select": "COUNT"},
        "count-filtered": {**base, "Select": "COUNT", "FilterExpression": "score > :s",
                           "ExpressionAttributeValues": {":p": p, ":s": {"N": "6"}}},
        "specific": {**base, "Select": "SPECIFIC_ATTRIBUTES", "ProjectionExpression": "s, big"},
        "consistent": {**base, "ConsistentRead": True, "Limit": 4},
        "capacity": {**base, "ReturnConsumedCapacity": "TOTAL", "ConsistentRead": True},
    }
    if prefix:
        variants["begins-with"] = {**ranged, "KeyConditionExpression": "#p = :p AND begins_with(#k, :pre)",
                                   "ExpressionAttributeValues": {":p": p, ":pre": prefix}}
    return variants


def _order(av):
    from decimal import Decimal
    (t, v), = av.items()
    return Decimal(v) if t == "N" else v


VARIANT_NAMES = ["partition", "greater", "between-backwards", "limit-pages", "filter-pages", "projection",
                 "count", "count-filtered", "specific", "consistent", "capacity", "begins-with"]
# begins_with needs an S or B sort key
QUERY_CASES = [(t, v) for t in COMPOSITE for v in VARIANT_NAMES if not (t == "SN" and v == "begins-with")]


@pytest.mark.parametrize("table_id, variant", QUERY_CASES)
def test_query_matches_dynamodb(dax, ddb, tables, uid, table_id, variant):
    table = tables[table_id]
    variants = _query_variants(table, uid)
    _seed(ddb, table, uid)
    kwargs = {"TableName": table.name, **variants[variant]}
    assert pages(dax.query, **kwargs) == pages(ddb.query, **kwargs)


@pytest.mark.parametrize("table_id", ["S", "N", "B"])
def test_query_on_hash_only_tables_matches_dynamodb(dax, ddb, tables, uid, table_id):
    table = tables[table_id]
    ddb.put_item(TableName=table.name, Item=rich_item(table, uid))
    kwargs = {"TableName": table.name, "KeyConditionExpression": "pk = :p",
              "ExpressionAttributeValues": {":p": table.key(uid)["pk"]}}
    assert pages(dax.query, **kwargs) == pages(ddb.query, **kwargs)


INDEX_QUERIES = {
    "gsi-pages": lambda uid: {"IndexName": "by_kind", "KeyConditionExpression": "kind = :k", "Limit": 2,
                              "ExpressionAttributeValues": {":k": {"S": f"{uid}-k0"}}},
    "gsi-backwards-projection": lambda uid: {
        "IndexName": "by_kind", "KeyConditionExpression": "kind = :k AND sk > :z", "ScanIndexForward": False,
        "ProjectionExpression": "pk, sk, m.nested.k", "ExpressionAttributeValues": {":k": {"S": f"{uid}-k1"},
                                                                                    ":z": {"N": "0"}}},
    "gsi-keys-only-pages": lambda uid: {"IndexName": "kind_keys", "KeyConditionExpression": "kind = :k",
                                        "Limit": 1, "ExpressionAttributeValues": {":k": {"S": f"{uid}-k1"}}},
    "gsi-count": lambda uid: {"IndexName": "by_kind", "KeyConditionExpression": "kind = :k", "Select": "COUNT",
                              "ExpressionAttributeValues": {":k": {"S": f"{uid}-k0"}}},
    "lsi-projected-pages": lambda uid: {
        "IndexName": "by_score", "KeyConditionExpression": "pk = :p AND score >= :s", "Limit": 2,
        "Select": "ALL_PROJECTED_ATTRIBUTES", "ExpressionAttributeValues": {":p": {"S": uid}, ":s": {"N": "5"}}},
    "lsi-fetches-unprojected": lambda uid: {
        "IndexName": "by_score", "KeyConditionExpression": "pk = :p", "ProjectionExpression": "s, score, big",
        "ExpressionAttributeValues": {":p": {"S": uid}}, "ReturnConsumedCapacity": "INDEXES",
        "ConsistentRead": True},
    "lsi-filter": lambda uid: {"IndexName": "by_score", "KeyConditionExpression": "pk = :p",
                               "FilterExpression": "kind = :k", "Limit": 3,
                               "ExpressionAttributeValues": {":p": {"S": uid}, ":k": {"S": f"{uid}-k0"}}},
}


@pytest.mark.parametrize("variant", list(INDEX_QUERIES))
def test_index_query_matches_dynamodb(dax, ddb, composite_table, uid, variant):
    _seed(ddb, composite_table, uid)
    kwargs = {"TableName": composite_table.name, **INDEX_QUERIES[variant](uid)}
    assert pages(dax.query, **kwargs) == pages(ddb.query, **kwargs)


def test_gsi_query_with_unprojected_attribute_is_rejected_like_dynamodb(dax, ddb, composite_table, uid):
    kwargs = {"TableName": composite_table.name, "IndexName": "kind_keys", "KeyConditionExpression": "kind = :k",
              "Select": "ALL_ATTRIBUTES", "ExpressionAttributeValues": {":k": {"S": uid}}}
    assert outcome(dax.query, **kwargs) == outcome(ddb.query, **kwargs) == ("error", "ValidationException")


# ---------------------------------------------------------------------------------------- Scan

SCANS = {
    "filter": {},
    "pages": {"Limit": 2},
    "projection-pages": {"Limit": 3, "ProjectionExpression": "pk, s, l[0]"},
    "count": {"Select": "COUNT"},
    "segment-0": {"TotalSegments": 2, "Segment": 0},
    "segment-1": {"TotalSegments": 2, "Segment": 1},
    "consistent-capacity": {"ConsistentRead": True, "ReturnConsumedCapacity": "TOTAL"},
}


@pytest.mark.parametrize("variant", list(SCANS))
def test_scan_matches_dynamodb(dax, ddb, table, uid, variant):
    _seed(ddb, table, uid, n=4)
    kwargs = {"TableName": table.name, "FilterExpression": "begins_with(kind, :u)",
              "ExpressionAttributeValues": {":u": {"S": uid}}, **SCANS[variant]}
    assert pages(dax.scan, **kwargs) == pages(ddb.scan, **kwargs)


@pytest.mark.parametrize("index", ["by_kind", "kind_keys", "by_score"])
def test_index_scan_matches_dynamodb(dax, ddb, composite_table, uid, index):
    _seed(ddb, composite_table, uid, n=4)
    kwargs = {"TableName": composite_table.name, "IndexName": index, "Limit": 2,
              "FilterExpression": "begins_with(kind, :u)", "ExpressionAttributeValues": {":u": {"S": uid}}}
    assert pages(dax.scan, **kwargs) == pages(ddb.scan, **kwargs)


# ---------------------------------------------------------------------------------------- batches

def _sorted_responses(result):
    result = norm(result)
    result["Responses"] = {t: sorted(items, key=lambda i: repr(sorted(i.items()))) for t, items in result["Responses"].items()}
    return result


@pytest.mark.parametrize("consistent", [False, True], ids=["eventual", "consistent"])
def test_batch_get_item_matches_dynamodb(dax, ddb, table, composite_table, uid, consistent):
    for sort in range(3):
        ddb.put_item(TableName=table.name, Item=rich_item(table, uid, sort))
    dax.put_item(TableName=composite_table.name, Item=rich_item(composite_table, uid, 1))
    request = {
        table.name: {"Keys": [table.key(uid, 0), table.key(uid, 2), table.key(uid + "x", 9)],
                     "ConsistentRead": consistent},
    }
    if composite_table.name != table.name:
        request[composite_table.name] = {"Keys": [composite_table.key(uid, 1), composite_table.key(uid, 4)],
                                         "ProjectionExpression": "#s, m.nested, l[1]",
                                         "ExpressionAttributeNames": {"#s": "s"}}
    for _ in range(2):  # the second round is served from the item cache (unless consistent)
        via_dax = dax.batch_get_item(RequestItems=request)
        direct = ddb.batch_get_item(RequestItems=request)
        assert _sorted_responses(via_dax) == _sorted_responses(direct)


def test_batch_write_item_matches_dynamodb(dax, ddb, table, composite_table, uid):
    def run(client, suffix):
        ddb.put_item(TableName=table.name, Item=rich_item(table, uid + suffix, 5))
        response = client.batch_write_item(RequestItems={
            table.name: [{"PutRequest": {"Item": rich_item(table, uid + suffix, 1)}},
                         {"PutRequest": {"Item": {**table.key(uid + suffix, 2), "only": {"S": "x"}}}},
                         {"DeleteRequest": {"Key": table.key(uid + suffix, 5)}}],
            **({composite_table.name: [{"PutRequest": {"Item": rich_item(composite_table, uid + suffix, 7)}}]}
               if composite_table.name != table.name else {}),
        }, ReturnConsumedCapacity="TOTAL")
        items = [_get(ddb, table, table.key(uid + suffix, s)) for s in (1, 2, 5)]
        return strip_capacity_units(norm(response)), items

    via_dax, dax_items = run(dax, "d")
    direct, direct_items = run(ddb, "r")
    assert via_dax == direct
    assert _without_key(dax_items) == _without_key(direct_items)
    assert dax_items[2] is None and dax_items[1]["only"] == {"S": "x"}


def _without_key(items):
    """Items from twin partitions, comparable: the partition-dependent attributes dropped."""
    return [None if i is None else {k: v for k, v in norm(i).items() if k not in ("pk", "kind")} for i in items]


# ---------------------------------------------------------------------------------------- transactions

def test_transact_get_items_matches_dynamodb(dax, ddb, table, composite_table, uid):
    ddb.put_item(TableName=table.name, Item=rich_item(table, uid))
    ddb.put_item(TableName=composite_table.name, Item=rich_item(composite_table, uid, 3))
    items = [
        {"Get": {"TableName": table.name, "Key": table.key(uid)}},
        {"Get": {"TableName": table.name, "Key": table.key(uid + "missing")}},
        {"Get": {"TableName": composite_table.name, "Key": composite_table.key(uid, 3),
                 "ProjectionExpression": "#l[1].x, m.a, absent", "ExpressionAttributeNames": {"#l": "l"}}},
    ]
    assert norm(dax.transact_get_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")) == \
        norm(ddb.transact_get_items(TransactItems=items, ReturnConsumedCapacity="TOTAL"))


def _transaction(table, composite_table, part, condition_value):
    return [
        {"Put": {"TableName": table.name, "Item": {**table.key(part, 1), "v": {"S": "put"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Update": {"TableName": table.name, "Key": table.key(part, 2),
                    "UpdateExpression": "SET n = n + :one ADD ss :c", "ConditionExpression": "attribute_exists(n)",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":c": {"SS": ["c"]}}}},
        {"Delete": {"TableName": table.name, "Key": table.key(part, 3)}},
        {"ConditionCheck": {"TableName": composite_table.name, "Key": composite_table.key(part, 4),
                            "ConditionExpression": "#s = :v", "ExpressionAttributeNames": {"#s": "s"},
                            "ExpressionAttributeValues": {":v": {"S": condition_value}},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
    ]


@pytest.mark.parametrize("passes", [True, False], ids=["committed", "cancelled"])
def test_transact_write_items_matches_dynamodb(dax, ddb, table, composite_table, uid, passes):
    def run(client, part):
        for sort in (2, 3):
            ddb.put_item(TableName=table.name, Item=rich_item(table, part, sort))
        ddb.put_item(TableName=composite_table.name, Item=rich_item(composite_table, part, 4))
        expected = rich_item(composite_table, part, 4)["s"]["S"] if passes else "wrong"
        result = outcome(client.transact_write_items,
                         TransactItems=_transaction(table, composite_table, part, expected))
        return result, _without_key([_get(ddb, table, table.key(part, s)) for s in (1, 2, 3)])

    assert run(dax, uid + "d") == run(ddb, uid + "r")


def test_cancelled_transaction_carries_cancellation_reasons(dax, ddb, table, composite_table, uid):
    ddb.put_item(TableName=composite_table.name, Item=rich_item(composite_table, uid, 4))
    with pytest.raises(ClientError) as err:
        dax.transact_write_items(TransactItems=_transaction(table, composite_table, uid, "wrong"))
    assert err.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = err.value.cancellation_reasons
    codes = reasons[0::3]
    assert codes == ["None", "ConditionalCheckFailed", "None", "ConditionalCheckFailed"] or \
        codes[3] == "ConditionalCheckFailed"
    assert reasons[3 * 3 + 2] is not None  # ALL_OLD item of the failed ConditionCheck


def test_transact_write_with_client_request_token_is_idempotent(dax, ddb, table, uid):
    items = [{"Update": {"TableName": table.name, "Key": table.key(uid), "UpdateExpression": "ADD c :one",
                         "ExpressionAttributeValues": {":one": {"N": "1"}}}}]
    for _ in range(2):
        dax.transact_write_items(TransactItems=items, ClientRequestToken=f"token-{uid}")
    assert _get(ddb, table, table.key(uid))["c"] == {"N": "1"}


# ---------------------------------------------------------------------------------------- ConsumedCapacity

@pytest.mark.parametrize("level", ["TOTAL", "INDEXES"])
def test_consumed_capacity_of_pass_through_reads_matches_dynamodb(dax, ddb, composite_table, uid, level):
    _seed(ddb, composite_table, uid, n=3)
    key = composite_table.key(uid, 1)
    get = {"TableName": composite_table.name, "Key": key, "ConsistentRead": True, "ReturnConsumedCapacity": level}
    assert dax.get_item(**get)["ConsumedCapacity"] == ddb.get_item(**get)["ConsumedCapacity"]
    query = {"TableName": composite_table.name, "IndexName": "by_score", "KeyConditionExpression": "pk = :p",
             "ExpressionAttributeValues": {":p": {"S": uid}}, "ReturnConsumedCapacity": level,
             "ConsistentRead": True}
    assert dax.query(**query)["ConsumedCapacity"] == ddb.query(**query)["ConsumedCapacity"]


@pytest.mark.parametrize("level", ["TOTAL", "INDEXES"])
def test_consumed_capacity_of_writes_matches_dynamodb(dax, ddb, composite_table, uid, level):
    def run(client, part):
        put = client.put_item(TableName=composite_table.name, Item=rich_item(composite_table, part),
                              ReturnConsumedCapacity=level)
        tx = client.transact_write_items(TransactItems=[
            {"Update": {"TableName": composite_table.name, "Key": composite_table.key(part),
                        "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}}}],
            ReturnConsumedCapacity=level)
        return put["ConsumedCapacity"], tx["ConsumedCapacity"]

    assert run(dax, uid + "d") == run(ddb, uid + "r")


def test_cache_hit_reports_zero_capacity(dax, ddb, table, uid):
    dax.put_item(TableName=table.name, Item=rich_item(table, uid))
    response = dax.get_item(TableName=table.name, Key=table.key(uid), ReturnConsumedCapacity="TOTAL")
    assert response["ConsumedCapacity"] == {"TableName": table.name, "CapacityUnits": 0.0}


# ---------------------------------------------------------------------------------------- PynamoDB's shapes

def test_pynamodb_shaped_requests_work(dax, ddb, composite_table, uid):
    """The request shapes PynamoDB 6 sends: names/values everywhere and ReturnConsumedCapacity=TOTAL."""
    t = composite_table.name
    names = {"#0": "pk", "#1": "sk", "#2": "v"}
    dax.put_item(TableName=t, Item={"pk": {"S": uid}, "sk": {"N": "1"}, "v": {"N": "1"}},
                 ConditionExpression="attribute_not_exists (#0)", ExpressionAttributeNames={"#0": "pk"},
                 ReturnConsumedCapacity="TOTAL")
    dax.update_item(TableName=t, Key={"pk": {"S": uid}, "sk": {"N": "1"}}, UpdateExpression="SET #2 = #2 + :0",
                    ConditionExpression="#2 = :1", ExpressionAttributeNames={"#2": "v"},
                    ExpressionAttributeValues={":0": {"N": "1"}, ":1": {"N": "1"}}, ReturnConsumedCapacity="TOTAL",
                    ReturnValues="ALL_NEW")
    got = dax.get_item(TableName=t, Key={"pk": {"S": uid}, "sk": {"N": "1"}}, ConsistentRead=False,
                       ProjectionExpression="#0, #2", ExpressionAttributeNames={"#0": "pk", "#2": "v"},
                       ReturnConsumedCapacity="TOTAL")
    assert got["Item"] == {"pk": {"S": uid}, "v": {"N": "2"}}
    page = dax.query(TableName=t, KeyConditionExpression="#0 = :0 AND #1 BETWEEN :1 AND :2",
                     FilterExpression="#2 > :3", ProjectionExpression="#0, #1, #2", ExpressionAttributeNames=names,
                     ExpressionAttributeValues={":0": {"S": uid}, ":1": {"N": "0"}, ":2": {"N": "5"},
                                                ":3": {"N": "1"}},
                     ReturnConsumedCapacity="TOTAL", ScanIndexForward=False, Limit=10)
    assert page["Items"] == [{"pk": {"S": uid}, "sk": {"N": "1"}, "v": {"N": "2"}}]
    batch = dax.batch_get_item(RequestItems={t: {"Keys": [{"pk": {"S": uid}, "sk": {"N": "1"}}]}},
                               ReturnConsumedCapacity="TOTAL")
    assert batch["Responses"][t][0]["v"] == {"N": "2"}
    dax.transact_write_items(TransactItems=[
        {"ConditionCheck": {"TableName": t, "Key": {"pk": {"S": uid}, "sk": {"N": "1"}},
                            "ConditionExpression": "#2 = :0", "ExpressionAttributeNames": {"#2": "v"},
                            "ExpressionAttributeValues": {":0": {"N": "2"}}}},
        {"Put": {"TableName": t, "Item": {"pk": {"S": uid}, "sk": {"N": "2"}},
                 "ConditionExpression": "attribute_not_exists (#0)", "ExpressionAttributeNames": {"#0": "pk"}}},
    ], ReturnConsumedCapacity="TOTAL")
    with pytest.raises(ClientError) as err:
        dax.delete_item(TableName=t, Key={"pk": {"S": uid}, "sk": {"N": "1"}}, ConditionExpression="#2 = :0",
                        ExpressionAttributeNames={"#2": "v"}, ExpressionAttributeValues={":0": {"N": "9"}},
                        ReturnConsumedCapacity="TOTAL")
    assert err.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert _get(ddb, composite_table, {"pk": {"S": uid}, "sk": {"N": "2"}}) is not None
