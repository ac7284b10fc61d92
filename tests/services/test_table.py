import pytest
from django.core.management import call_command

from sessions_app import dynamo
from sessions_app.models import SessionMeta
from sessions_app.services import table_delete, table_ensure


def _describe(name):
    client = dynamo.connection().client
    table = client.describe_table(TableName=name)["Table"]
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    return table, ttl


def test_dynamodb_init_creates_table_indexes_and_ttl_then_is_a_no_op(infra, table_name, settings, capsys):
    settings.DYNAMODB_TABLE = table_name
    dynamo.reset_connections()
    try:
        call_command("dynamodb_init")
        first = capsys.readouterr().out
        table, ttl = _describe(table_name)
        assert "created" in first
        declared = {i["index_name"] for i in SessionMeta._get_schema()["global_secondary_indexes"]}
        assert {"by_customer", "by_day", "by_status"} <= declared
        assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == declared
        assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "ttl"

        call_command("dynamodb_init")
        assert "nothing changed" in capsys.readouterr().out
        again, _ = _describe(table_name)
        assert again["GlobalSecondaryIndexes"] == table["GlobalSecondaryIndexes"]
        assert not table_ensure(table_name=table_name).changed
    finally:
        table_delete(table_name=table_name)


def test_dynamodb_init_adds_a_missing_index_to_an_existing_table(infra, table_name, settings):
    settings.DYNAMODB_TABLE = table_name
    dynamo.reset_connections()
    client = dynamo.connection().client
    # An older deployment's table: only the customer index, no TTL.
    client.create_table(
        TableName=table_name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK", "GSI1PK", "GSI1SK")],
        GlobalSecondaryIndexes=[{
            "IndexName": "by_customer",
            "KeySchema": [{"AttributeName": "GSI1PK", "KeyType": "HASH"}, {"AttributeName": "GSI1SK", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }],
    )
    try:
        report = table_ensure(table_name=table_name)
        assert not report.created and report.ttl_enabled
        assert {"by_day", "by_status"} <= set(report.indexes_added) and "by_customer" not in report.indexes_added
        table, ttl = _describe(table_name)
        names = {i["IndexName"] for i in table["GlobalSecondaryIndexes"]}
        assert {"by_customer", "by_day", "by_status"} <= names
        assert all(i["IndexStatus"] == "ACTIVE" for i in table["GlobalSecondaryIndexes"])
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert not table_ensure(table_name=table_name).changed
    finally:
        table_delete(table_name=table_name)


@pytest.fixture
def table_without_stream(infra, table_name, settings):
    """A session table created before the change feed (no stream); dropped after the test."""
    settings.DYNAMODB_TABLE = table_name
    dynamo.reset_connections()
    settings.DYNAMODB_STREAM = False
    table_ensure(table_name=table_name)
    settings.DYNAMODB_STREAM = True
    client = dynamo.connection().client
    assert "StreamSpecification" not in client.describe_table(TableName=table_name)["Table"]
    yield client
    table_delete(table_name=table_name)


def test_dynamodb_init_enables_the_stream_on_an_existing_table_once(table_without_stream, table_name, capsys):
    client = table_without_stream
    call_command("dynamodb_init")
    out = capsys.readouterr().out
    assert "stream enabled (NEW_AND_OLD_IMAGES)" in out and "stream lease table created" in out
    table = client.describe_table(TableName=table_name)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert f"stream: {table['LatestStreamArn']}" in out
    call_command("dynamodb_init")
    assert "nothing changed" in capsys.readouterr().out
    assert client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"] == table["LatestStreamArn"]


def test_a_stream_of_another_view_type_is_reported_not_replaced(table_without_stream, table_name, capsys):
    client = table_without_stream
    client.update_table(TableName=table_name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    arn = client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    call_command("dynamodb_init")
    err = capsys.readouterr().err
    assert "view type is KEYS_ONLY" in err and "NEW_AND_OLD_IMAGES" in err
    assert client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"] == arn
