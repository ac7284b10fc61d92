"""sessions_app/dax_client_tuning.py: the DAX client's operations give the same answers with the
tuning on and off (the real client against the session's DAX node), and the tuning refuses any
client version but the one it was written for."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

import pytest
from botocore.config import Config

from sessions_app import dax_client_tuning

NUMBERS = ["0", "-1", "12.50", "3.14159265358979323846264338327950288", "1E+100", "-1.5E-100",
           "99999999999999999999999999999999999999", "0.000001", "123456789012345678"]


def _items():
    yield {"PK": {"S": "p#1"}, "SK": {"S": "a"}, "text": {"S": "こんにちは、注文した漫画が届きません 🙂"},
           "blob": {"B": bytes(range(256))}, "n": {"N": "42"}, "empty": {"S": ""}}
    for i, number in enumerate(NUMBERS):
        yield {"PK": {"S": "p#1"}, "SK": {"S": f"n{i:02d}"}, "v": {"N": number}, "neg": {"N": "-" + number.lstrip("-")}}
    yield {"PK": {"S": "p#1"}, "SK": {"S": "sets"}, "ss": {"SS": ["a", "ワンピース", "z"]},
           "ns": {"NS": ["1", "2.5", "-3", "1E+10"]}, "bs": {"BS": [b"\x00", b"\xff\xfe"]}}
    yield {"PK": {"S": "p#1"}, "SK": {"S": "doc"}, "m": {"M": {
        "nested": {"M": {"deep": {"L": [{"S": "x"}, {"N": "1.0"}, {"NULL": True}, {"BOOL": False}]}}},
        "flag": {"BOOL": True}, "nothing": {"NULL": True}, "bin": {"B": b"\x01\x02"}, "日本": {"S": "語"}}},
           "l": {"L": [{"L": []}, {"M": {}}, {"SS": ["q"]}, {"N": "-0.5"}]}}
    for i in range(30):
        yield {"PK": {"S": "p#2"}, "SK": {"S": f"t{i:03d}"}, "seq": {"N": str(i)}, "type": {"S": "turn"},
               "body": {"B": ("本文 " * i).encode()}}


def _clean(reply):
    if isinstance(reply, dict):
        reply = {k: v for k, v in reply.items() if k not in ("ResponseMetadata", "ConsumedCapacity")}
        if "Items" in reply:
            reply["Items"] = sorted(reply["Items"], key=repr)
        if "Responses" in reply and isinstance(reply["Responses"], dict):  # BatchGetItem: no order
            # (each run has a table of its own: drop its name)
            reply["Responses"] = sorted((i for items in reply["Responses"].values() for i in items), key=repr)
    return reply


def _sets_sorted(value):
    """DynamoDB returns set members in no particular order."""
    if isinstance(value, dict):
        return {k: (sorted(v, key=repr) if k in ("SS", "NS", "BS") else _sets_sorted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_sets_sorted(v) for v in value]
    return value


def _operations(client, table):
    """A representative run of the client's operations; every answer, in order."""
    out = []

    def record(name, call, **kwargs):
        try:
            out.append((name, _sets_sorted(_clean(call(**kwargs)))))
        except Exception as exc:  # errors are answers too: compare their codes
            out.append((name, type(exc).__name__, getattr(exc, "response", {}).get("Error", {}).get("Code")))

    for item in _items():
        record("put", client.put_item, TableName=table, Item=item, ReturnValues="ALL_OLD")
    record("put-again", client.put_item, TableName=table, Item={"PK": {"S": "p#1"}, "SK": {"S": "a"}, "n": {"N": "43"}},
           ReturnValues="ALL_OLD")
    for sk in ["a", "sets", "doc", "n03", "n04", "missing"]:
        record(f"get {sk}", client.get_item, TableName=table, Key={"PK": {"S": "p#1"}, "SK": {"S": sk}})
        record(f"get {sk} again (cached)", client.get_item, TableName=table, Key={"PK": {"S": "p#1"}, "SK": {"S": sk}})
    record("get projection", client.get_item, TableName=table, Key={"PK": {"S": "p#1"}, "SK": {"S": "doc"}},
           ProjectionExpression="#m.nested.deep[0], l[3], #m.#j", ExpressionAttributeNames={"#m": "m", "#j": "日本"})
    record("update", client.update_item, TableName=table, Key={"PK": {"S": "p#1"}, "SK": {"S": "n01"}},
           UpdateExpression="SET v = v + :d, note = :t ADD tags :s", ReturnValues="ALL_NEW",
           ExpressionAttributeValues={":d": {"N": "0.25"}, ":t": {"S": "更新"}, ":s": {"SS": ["x"]}})
    record("update condition fails", client.update_item, TableName=table, Key={"PK": {"S": "p#1"}, "SK": {"S": "n01"}},
           UpdateExpression="SET v = :z", ConditionExpression="attribute_not_exists(v)",
           ExpressionAttributeValues={":z": {"N": "0"}})
    record("delete", client.delete_item, TableName=table, Key={"PK": {"S": "p#1"}, "SK": {"S": "n02"}}, ReturnValues="ALL_OLD")
    record("query", client.query, TableName=table, KeyConditionExpression="PK = :p AND SK BETWEEN :a AND :b",
           ExpressionAttributeValues={":p": {"S": "p#2"}, ":a": {"S": "t005"}, ":b": {"S": "t025"}})
    record("query filtered", client.query, TableName=table, KeyConditionExpression="PK = :p",
           ExpressionAttributeValues={":p": {"S": "p#2"}, ":m": {"N": "10"}}, FilterExpression="seq >= :m")
    record("query page", client.query, TableName=table, KeyConditionExpression="PK = :p",
           ExpressionAttributeValues={":p": {"S": "p#2"}}, Limit=7, ScanIndexForward=False)
    record("query count", client.query, TableName=table, KeyConditionExpression="PK = :p",
           ExpressionAttributeValues={":p": {"S": "p#1"}}, Select="COUNT")
    record("scan", client.scan, TableName=table)
    record("batch get", client.batch_get_item, RequestItems={table: {"Keys": [
        {"PK": {"S": "p#2"}, "SK": {"S": f"t{i:03d}"}} for i in range(0, 30, 3)] + [
        {"PK": {"S": "p#1"}, "SK": {"S": "doc"}}, {"PK": {"S": "p#1"}, "SK": {"S": "nope"}}]}})
    record("batch write", client.batch_write_item, RequestItems={table: [
        {"PutRequest": {"Item": {"PK": {"S": "p#3"}, "SK": {"S": str(i)}, "v": {"N": str(i * 1.5)}}}} for i in range(5)
    ] + [{"DeleteRequest": {"Key": {"PK": {"S": "p#2"}, "SK": {"S": "t000"}}}}]})
    record("transact write", client.transact_write_items, TransactItems=[
        {"Put": {"TableName": table, "Item": {"PK": {"S": "p#4"}, "SK": {"S": "x"}, "s": {"S": "取引"}}}},
        {"Update": {"TableName": table, "Key": {"PK": {"S": "p#3"}, "SK": {"S": "1"}},
                    "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"N": "7"}}}},
    ])
    record("transact condition fails", client.transact_write_items, TransactItems=[
        {"ConditionCheck": {"TableName": table, "Key": {"PK": {"S": "p#4"}, "SK": {"S": "x"}},
                            "ConditionExpression": "attribute_not_exists(PK)"}}])
    record("transact get", client.transact_get_items, TransactItems=[
        {"Get": {"TableName": table, "Key": {"PK": {"S": "p#4"}, "SK": {"S": "x"}}}},
        {"Get": {"TableName": table, "Key": {"PK": {"S": "p#1"}, "SK": {"S": "sets"}}}}])
    record("scan after", client.scan, TableName=table)
    record("validation error", client.get_item, TableName=table, Key={"PK": {"S": "p#1"}})
    return out


def _table(endpoint: str) -> str:
    import botocore.session

    name = f"tuning-{uuid.uuid4().hex[:10]}"
    boto = botocore.session.get_session().create_client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    boto.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                      AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                                            {"AttributeName": "SK", "AttributeType": "S"}],
                      KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}])
    return name


def _run(dax_node, infra, *, tuned: bool):
    from amazondax import AmazonDaxClient

    assert dax_client_tuning.apply(tuned) is tuned
    client = AmazonDaxClient(endpoints=[dax_node["endpoint"]], region_name="us-east-1",
                             config=Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1}))
    try:
        return _operations(client, _table(infra["dynamodb_endpoint"]))
    finally:
        client.close()


@pytest.fixture
def restore_tuning(settings):
    yield
    dax_client_tuning.apply(settings.DAX_CLIENT_TUNING)


def test_the_client_answers_the_same_with_the_tuning_on_and_off(dax_node, infra, restore_tuning):
    stock = _run(dax_node, infra, tuned=False)
    tuned = _run(dax_node, infra, tuned=True)
    assert len(stock) == len(tuned)
    for a, b in zip(stock, tuned):
        assert a == b, a[0]
    # The run really decoded what it is about (not just errors).
    answers = dict((r[0], r[1]) for r in tuned if len(r) == 2)
    assert answers["get sets"]["Item"]["ns"] == {"NS": sorted(["1", "2.5", "-3", "10000000000"], key=repr)}
    assert answers["get doc"]["Item"]["m"]["M"]["日本"] == {"S": "語"}
    assert answers["put-again"]["Attributes"]["blob"] == {"B": bytes(range(256))}
    assert len(answers["query"]["Items"]) == 21


def test_numbers_decode_to_the_same_decimals(dax_node, infra, restore_tuning):
    stock, tuned = _run(dax_node, infra, tuned=False), _run(dax_node, infra, tuned=True)
    numbers = [r for r in tuned if r[0].startswith("get n0")]
    assert numbers and numbers == [r for r in stock if r[0].startswith("get n0")]
    for _, reply in numbers:
        Decimal(reply["Item"]["v"]["N"])


def test_it_refuses_another_client_version(monkeypatch, caplog, restore_tuning):
    import amazondax

    dax_client_tuning.apply(False)
    monkeypatch.setattr(amazondax, "__version__", "2.1.1")
    with caplog.at_level(logging.WARNING, logger="sessions_app.dax_client_tuning"):
        assert dax_client_tuning.apply(True) is False
    assert not dax_client_tuning.active()
    assert "written for amazon-dax-client 2.1.0" in caplog.text


def test_off_restores_the_stock_client(restore_tuning):
    from amazondax import AttributeValueDecoder

    dax_client_tuning.apply(False)
    stock = AttributeValueDecoder._decode_stream_item
    assert dax_client_tuning.apply(True) and AttributeValueDecoder._decode_stream_item is not stock
    assert dax_client_tuning.apply(True)  # idempotent
    assert dax_client_tuning.apply(False) is False and AttributeValueDecoder._decode_stream_item is stock


def test_the_routed_connection_applies_the_setting(dax_node, ddb, settings, restore_tuning):
    from sessions_app import dynamo
    from tests.builders import make_session

    meta = make_session(turns=2)
    for tuned in (False, True):
        settings.DAX_ENDPOINTS = [dax_node["endpoint"]]
        settings.DAX_CLIENT_TUNING = tuned
        dynamo.reset_connections()
        from sessions_app import selectors

        ctx = selectors.context_read(session_id=meta.session_id, turns=2, min_seq=2)
        assert dax_client_tuning.active() is tuned
        assert ctx.provenance["source"] == "dax" and [t.seq for t in ctx.turns] == [1, 2]
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()
