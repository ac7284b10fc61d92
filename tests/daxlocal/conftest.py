"""Fixtures for the DAX node suite: real DynamoDB Local tables, in-process nodes, real DAX clients.

Tables (created once per session, unique names) cover every key schema shape: S, N and B hash
keys, alone and with S, N and B range keys; the (S, N) table also has two GSIs (ALL and
KEYS_ONLY projections) and an LSI, so index reads and ItemCollectionMetrics are exercised.
"""

from __future__ import annotations

import uuid

import botocore.session
import pytest
from amazondax import AmazonDaxClient

from daxlocal import DaxNode, NodeConfig
from tests.daxlocal.helpers import FakeClock, Table


SCHEMAS = [("S", None), ("N", None), ("B", None), ("S", "N"), ("N", "B"), ("B", "S")]


@pytest.fixture(scope="session")
def ddb(infra):
    client = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=infra["dynamodb_endpoint"], region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def tables(ddb) -> dict[str, Table]:
    prefix = f"dax-{uuid.uuid4().hex[:8]}"
    out = {}
    for hash_type, range_type in SCHEMAS:
        indexed = (hash_type, range_type) == ("S", "N")
        table = Table(name=f"{prefix}-{hash_type}{range_type or ''}", hash=("pk", hash_type),
                      range=("sk", range_type) if range_type else None, indexed=indexed)
        _create(ddb, table)
        out[table.id] = table
    for table in out.values():
        ddb.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    return out


def _create(ddb, table: Table) -> None:
    attrs = {table.hash[0]: table.hash[1]}
    keys = [{"AttributeName": table.hash[0], "KeyType": "HASH"}]
    if table.range:
        attrs[table.range[0]] = table.range[1]
        keys.append({"AttributeName": table.range[0], "KeyType": "RANGE"})
    extra = {}
    if table.indexed:
        attrs.update({"kind": "S", "score": "N"})
        extra = {
            "GlobalSecondaryIndexes": [
                {"IndexName": "by_kind", "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"},
                               {"AttributeName": "sk", "KeyType": "RANGE"}]},
                {"IndexName": "kind_keys", "Projection": {"ProjectionType": "KEYS_ONLY"},
                 "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}]},
            ],
            "LocalSecondaryIndexes": [
                {"IndexName": "by_score", "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["kind"]},
                 "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                               {"AttributeName": "score", "KeyType": "RANGE"}]},
            ],
        }
    ddb.create_table(
        TableName=table.name, KeySchema=keys, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()], **extra,
    )


@pytest.fixture(params=SCHEMAS, ids=[h + (r or "") for h, r in SCHEMAS])
def table(request, tables) -> Table:
    return tables[request.param[0] + (request.param[1] or "")]


@pytest.fixture
def composite_table(tables) -> Table:
    return tables["SN"]


def make_node(infra, **overrides) -> DaxNode:
    clock = overrides.pop("clock", None)
    config = NodeConfig(dynamodb_endpoint=infra["dynamodb_endpoint"], port=0, stats_port=0, **overrides)
    return DaxNode(config, **({"clock": clock} if clock else {})).start()


def make_client(node: DaxNode) -> AmazonDaxClient:
    return AmazonDaxClient(endpoints=[f"127.0.0.1:{node.port}"], region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")


@pytest.fixture(scope="session")
def shared_node(infra):
    """One node with DAX's default TTLs, for the comparison tests (each test uses its own partitions)."""
    node = make_node(infra)
    yield node
    node.stop()


@pytest.fixture(scope="session")
def dax(shared_node):
    client = make_client(shared_node)
    yield client
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def node_factory(infra):
    """Build in-process nodes with custom options; all are stopped (and their clients closed) at teardown."""
    made: list = []

    def factory(**overrides):
        node = make_node(infra, **overrides)
        client = make_client(node)
        made.append((node, client))
        return node, client

    yield factory
    for node, client in made:
        client.close()
        node.stop()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]
