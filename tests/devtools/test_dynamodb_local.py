"""DynamoDB Local as the test session, `make run` and the bench start it: a file database with
its stream records indexed (devtools/procs.py, dynamodb_local_index_streams)."""

import sqlite3

import botocore.session

from devtools import procs

STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _indexes(db) -> set[str]:
    with sqlite3.connect(db) as conn:
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'us'")}
    conn.close()
    return names


def test_a_throw_away_database_is_indexed_used_and_removed_when_stopped(tmp_path):
    port = procs.free_port()
    proc = procs.start_dynamodb_local(port, log=tmp_path / "dynamodb.log")
    scratch = proc.scratch_dir
    try:
        [db] = scratch.glob("*.db")
        assert "mangaassist_us_stream" in _indexes(db)
        client = botocore.session.get_session().create_client(
            "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local")
        client.create_table(TableName="probe", KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST", StreamSpecification=STREAM)
        client.put_item(TableName="probe", Item={"PK": {"S": "a"}})
        assert client.get_item(TableName="probe", Key={"PK": {"S": "a"}}, ConsistentRead=True)["Item"] == {"PK": {"S": "a"}}
        client.close()
        with sqlite3.connect(db) as conn:  # the record went where the index is
            assert conn.execute("SELECT count(*) FROM us").fetchone() == (1,)
        conn.close()
    finally:
        procs.stop(proc)
    assert not scratch.exists()


def test_a_kept_database_is_indexed_once_and_stays(tmp_path):
    data = tmp_path / "data"
    for _ in range(2):  # a restart of `make run` indexes again: IF NOT EXISTS
        port = procs.free_port()
        proc = procs.start_dynamodb_local(port, db_path=data, log=tmp_path / "dynamodb.log")
        try:
            assert not hasattr(proc, "scratch_dir")
            assert procs.dynamodb_local_index_streams(port, data) == 1
        finally:
            procs.stop(proc)
    [db] = data.glob("*.db")
    assert "mangaassist_us_stream" in _indexes(db)
