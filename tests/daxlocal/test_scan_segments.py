"""Parallel-scan parameters: the node answers invalid Segment/TotalSegments exactly as DynamoDB does.

DynamoDB Local is the oracle: every case is sent to it straight (botocore) and to the node, and the
two answers (error code, message and HTTP status, or the scanned pages) must be the same. Cases the
``amazondax`` client can send go through the real client; values the client (like boto3) refuses
on its own side — a negative Segment, a TotalSegments below 1 — can still arrive on the wire, so
they are sent over a raw protocol connection and compared with DynamoDB Local reached with
botocore's parameter validation off.
"""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.daxlocal.helpers import Raw, pages, request, rich_item

SCAN = -1875390620
K_LIMIT, K_SEGMENT, K_TOTAL_SEGMENTS = 13, 16, 17

SEGMENT_ONLY = "If segment is specified, total segment must also be specified"
TOTAL_ONLY = "If total segments is specified, a particular segment must also be specified for this request"


def answer(call, **kwargs):
    """("ok", pages) or ("error", code, message, HTTP status) for a Scan."""
    try:
        return ("ok", pages(call, **kwargs))
    except ClientError as exc:
        return ("error", exc.response["Error"]["Code"], exc.response["Error"]["Message"],
                exc.response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.fixture
def seeded(ddb, composite_table, uid):
    for sort in range(4):
        ddb.put_item(TableName=composite_table.name, Item=rich_item(composite_table, uid, sort))
    return {"TableName": composite_table.name, "FilterExpression": "begins_with(kind, :u)",
            "ExpressionAttributeValues": {":u": {"S": uid}}}


INVALID = {
    "segment-without-total": {"Segment": 0},
    "nonzero-segment-without-total": {"Segment": 1},
    "total-without-segment": {"TotalSegments": 2},
    "total-1-without-segment": {"TotalSegments": 1},
    "segment-equals-total": {"Segment": 2, "TotalSegments": 2},
    "segment-above-total": {"Segment": 5, "TotalSegments": 2},
    "total-above-1000000": {"Segment": 0, "TotalSegments": 1_000_001},
    "segment-above-999999": {"Segment": 1_000_000, "TotalSegments": 1_000_000},
    "segment-beyond-both-limits": {"Segment": 5_000_000, "TotalSegments": 1_000_001},
    "unknown-index-is-reported-first": {"Segment": 0, "IndexName": "no_such_index"},
}

VALID = {
    "one-segment": {"Segment": 0, "TotalSegments": 1},
    "last-of-most-segments": {"Segment": 999_999, "TotalSegments": 1_000_000},
    "second-of-three-with-limit": {"Segment": 1, "TotalSegments": 3, "Limit": 1},
}


@pytest.mark.parametrize("params", list(INVALID.values()), ids=list(INVALID))
def test_invalid_parallel_scan_is_rejected_like_dynamodb(dax, ddb, seeded, params):
    direct = answer(ddb.scan, **seeded, **params)
    assert direct[:2] == ("error", "ValidationException")
    assert answer(dax.scan, **seeded, **params) == direct


def test_segment_without_total_segments_is_not_a_full_scan(dax, seeded):
    with pytest.raises(ClientError) as err:
        dax.scan(**seeded, Segment=0)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"] == SEGMENT_ONLY


def test_total_segments_without_segment_is_rejected(dax, seeded):
    with pytest.raises(ClientError) as err:
        dax.scan(**seeded, TotalSegments=4)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"] == TOTAL_ONLY


@pytest.mark.parametrize("params", list(VALID.values()), ids=list(VALID))
def test_valid_parallel_scan_edges_match_dynamodb(dax, ddb, seeded, params):
    direct = answer(ddb.scan, **seeded, **params)
    assert direct[0] == "ok"
    assert answer(dax.scan, **seeded, **params) == direct


def test_segments_together_cover_the_table_once(dax, ddb, seeded):
    whole = answer(ddb.scan, **seeded)[1]
    items = sorted(_canonical(item) for page in whole for item in page["Items"])
    parts = [answer(dax.scan, **seeded, Segment=s, TotalSegments=3) for s in range(3)]
    assert all(part[0] == "ok" for part in parts)
    assert sorted(_canonical(item) for part in parts for page in part[1] for item in page["Items"]) == items
    assert len(items) == 4


def _canonical(item: dict) -> str:
    return json.dumps(item, sort_keys=True, default=str)


# --------------------------------------------------------------- values only the raw protocol can carry

@pytest.fixture(scope="module")
def ddb_unvalidated(infra):
    client = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=infra["dynamodb_endpoint"], region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local", config=Config(parameter_validation=False),
    )
    yield client
    client.close()


RAW = {
    "negative-segment-alone": {"Segment": -1},
    "total-0-alone": {"TotalSegments": 0},
    "negative-segment": {"Segment": -1, "TotalSegments": 2},
    "total-0": {"Segment": 0, "TotalSegments": 0},
    "negative-total": {"Segment": 0, "TotalSegments": -5},
    "negative-both": {"Segment": -1, "TotalSegments": -5},
    "negative-segment-total-above-limit": {"Segment": -1, "TotalSegments": 1_000_001},
    "limit-0-is-reported-first": {"Segment": 3, "TotalSegments": 2, "Limit": 0},
}
_KWARG = {"Segment": K_SEGMENT, "TotalSegments": K_TOTAL_SEGMENTS, "Limit": K_LIMIT}


@pytest.mark.parametrize("params", list(RAW.values()), ids=list(RAW))
def test_out_of_range_values_on_the_wire_get_dynamodbs_answer(shared_node, ddb_unvalidated, composite_table, params):
    with pytest.raises(ClientError) as err:
        ddb_unvalidated.scan(TableName=composite_table.name, **params)
    expected = err.value.response
    conn = Raw(shared_node.port)
    try:
        codes, message, detail = conn.call(request(SCAN, composite_table.name.encode(),
                                                   {_KWARG[name]: value for name, value in params.items()}))
    finally:
        conn.close()
    assert (message, detail[1], detail[2]) == (expected["Error"]["Message"], expected["Error"]["Code"],
                                               expected["ResponseMetadata"]["HTTPStatusCode"])
    assert expected["Error"]["Code"] == "ValidationException" and codes == [4, 37, 38, 39, 46]


def test_raw_scan_with_both_segments_valid_still_works(shared_node, seeded):
    conn = Raw(shared_node.port)
    try:
        header, reply = conn.call(request(SCAN, seeded["TableName"].encode(), {K_SEGMENT: 0, K_TOTAL_SEGMENTS: 1}))
    finally:
        conn.close()
    assert header == [] and reply[8] >= 4  # Count: the seeded items at least
