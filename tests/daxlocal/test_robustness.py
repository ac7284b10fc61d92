"""Malformed input, error replies on the wire, and node restarts under a live client."""

from __future__ import annotations

import os
import signal
import socket

import pytest
from amazondax import AmazonDaxClient
from botocore.exceptions import ClientError

from devtools import procs
from devtools.dax import start_dax_node, stop
from daxlocal import cbor, codec
from daxlocal.registry import list_id
from tests.daxlocal.helpers import ENDPOINTS, HANDSHAKE, Raw, request


@pytest.fixture
def node(node_factory):
    return node_factory()


GARBAGE = {
    "bad-magic": b"GET / HTTP/1.1\r\n\r\n",
    "reserved-cbor-byte": HANDSHAKE + b"\x1c",
    "unknown-method": HANDSHAKE + request(123456, b"x"),
    "wrong-service": HANDSHAKE + cbor.dumps(7) + cbor.dumps(455855874),
    "absurd-length": HANDSHAKE + cbor.dumps(1) + cbor.dumps(263244906) + b"\x5b" + b"\x7f" * 8,
    "stray-break": HANDSHAKE + cbor.dumps(1) + cbor.dumps(263244906) + b"\xff",
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
def test_malformed_frame_closes_only_that_connection(node, composite_table, uid, garbage):
    server, dax = node
    dax.put_item(TableName=composite_table.name, Item={**composite_table.key(uid), "v": {"S": "before"}})
    bystander = Raw(server.port)
    assert bystander.call(ENDPOINTS)[0] == []

    offender = Raw(server.port, handshake=False)
    offender.sock.sendall(garbage)
    assert offender.is_closed_by_peer()

    assert bystander.call(ENDPOINTS)[0] == []
    dax.put_item(TableName=composite_table.name, Item={**composite_table.key(uid), "v": {"S": "after"}})
    assert dax.get_item(TableName=composite_table.name, Key=composite_table.key(uid))["Item"]["v"] == {"S": "after"}
    bystander.close()


def test_truncated_frame_then_close_is_tolerated(node, composite_table, uid):
    server, dax = node
    whole = request(263244906, composite_table.name.encode(), codec.encode_key(composite_table.key(uid),
                                                                                [("pk", "S"), ("sk", "N")]), None)
    for cut in (1, len(whole) // 2, len(whole) - 1):
        offender = Raw(server.port)
        offender.sock.sendall(whole[:cut])
        offender.sock.shutdown(socket.SHUT_WR)
        assert offender.is_closed_by_peer()
        offender.close()
    assert dax.get_item(TableName=composite_table.name, Key=composite_table.key(uid)) == {}


def test_abrupt_close_mid_handshake_is_tolerated(node):
    server, dax = node
    for cut in range(0, len(HANDSHAKE), 3):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(HANDSHAKE[:cut])
        sock.close()
    assert Raw(server.port).call(ENDPOINTS)[0] == []


def test_request_errors_get_an_error_reply_and_keep_the_connection(node, composite_table, uid):
    server, _ = node
    conn = Raw(server.port)
    schema = [("pk", "S"), ("sk", "N")]
    key = codec.encode_key(composite_table.key(uid), schema)

    codes, message, detail = conn.call(request(263244906, b"no-such-table", b"k", None))
    assert codes == [4, 23, 24] and "not found" in message and detail[1] == "ResourceNotFoundException"

    unknown = codec.encode_values(2**62 + 12345, [{"S": "x"}])
    codes, message, detail = conn.call(request(-2106490455, composite_table.name.encode(), key, unknown, None))
    assert codes == [4, 37, 38, 39, 46] and "unknown attribute list id" in message

    ident = conn.call(request(-1230579644, ["alpha", "beta"]))[1]
    assert ident == list_id(("alpha", "beta"))
    short = codec.encode_values(ident, [{"S": "only one"}])
    codes, message, _ = conn.call(request(-2106490455, composite_table.name.encode(), key, short, None))
    assert codes == [4, 37, 38, 39, 46] and "2 names but the item carries 1 values" in message

    codes, message, _ = conn.call(request(670678385, 987654321))
    assert codes == [4, 37, 38, 39, 46] and "unknown attribute list id" in message

    codes, message, _ = conn.call(request(263244906, composite_table.name.encode(), b"\xff\xff", None))
    assert codes == [4, 37, 38, 39, 46] and isinstance(message, str)

    for codes in (reply[0] for reply in [conn.call(request(785068263))]):
        assert len(codes) > 1  # never the one-element path the client mishandles

    assert conn.call(ENDPOINTS)[0] == []  # the connection survived every error
    assert conn.call(request(670678385, ident)) == [[], ["alpha", "beta"]]
    conn.close()


def test_authorize_connection_is_never_answered(node):
    server, _ = node
    conn = Raw(server.port)
    auth = request(1489122155, "AKID", "0" * 64, b"string-to-sign", None, "agent")
    header, endpoints = conn.call(auth + ENDPOINTS)
    assert header == [] and endpoints[0][3] == server.port and endpoints[0][2] == b"\x7f\x00\x00\x01"
    conn.close()


# ------------------------------------------------------------------------------ restarts

@pytest.fixture
def subprocess_node(infra, tmp_path):
    """Start/restart a node subprocess on one fixed port; everything is stopped at teardown."""
    port = procs.free_port()
    state: dict = {"proc": None}

    def start(*extra):
        state["proc"] = start_dax_node(port, dynamodb_endpoint=infra["dynamodb_endpoint"], extra_args=extra,
                                       log=tmp_path / "node.log")
        return port

    def crash():
        os.killpg(state["proc"].pid, signal.SIGKILL)
        state["proc"].wait(10)

    yield start, crash
    if state["proc"] is not None:
        stop(state["proc"])


def _client(port: int) -> AmazonDaxClient:
    return AmazonDaxClient(endpoints=[f"127.0.0.1:{port}"], region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")


def test_restart_with_a_registry_file_keeps_a_live_client_working(subprocess_node, ddb, composite_table, uid,
                                                                   tmp_path):
    start, crash = subprocess_node
    registry = str(tmp_path / "registry.jsonl")
    port = start("--registry-file", registry)
    t = composite_table.name
    dax = _client(port)
    try:
        dax.put_item(TableName=t, Item={**composite_table.key(uid, 1), "alpha": {"S": "A1"}, "beta": {"S": "B1"}})
        dax.put_item(TableName=t, Item={**composite_table.key(uid, 2), "gamma": {"S": "G2"}})
        crash()
        start("--registry-file", registry)
        # The client still holds the ids of the first run; the restarted node must read them the same way.
        dax.put_item(TableName=t, Item={**composite_table.key(uid, 3), "alpha": {"S": "A3"}, "beta": {"S": "B3"}})
        stored = ddb.get_item(TableName=t, Key=composite_table.key(uid, 3), ConsistentRead=True)["Item"]
        assert {k: v for k, v in stored.items() if k in ("alpha", "beta", "gamma")} == \
            {"alpha": {"S": "A3"}, "beta": {"S": "B3"}}
        got = dax.get_item(TableName=t, Key=composite_table.key(uid, 2))["Item"]
        assert got["gamma"] == {"S": "G2"}
    finally:
        dax.close()


def test_restart_without_a_registry_file_refuses_old_ids_instead_of_corrupting(subprocess_node, ddb,
                                                                              composite_table, uid):
    start, crash = subprocess_node
    port = start()
    t = composite_table.name
    dax = _client(port)
    try:
        dax.put_item(TableName=t, Item={**composite_table.key(uid, 1), "alpha": {"S": "A1"}, "beta": {"S": "B1"}})
        crash()
        start()
        # A fresh registry that handed out small sequential ids would now re-label this write
        # (docs/dax-protocol.md §Attribute lists and values blobs). Content-derived ids make the
        # old id unknown instead: an error, no write.
        with pytest.raises(ClientError) as err:
            dax.put_item(TableName=t, Item={**composite_table.key(uid, 2), "alpha": {"S": "A2"}, "beta": {"S": "B2"}})
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert "unknown attribute list id" in err.value.response["Error"]["Message"]
        assert "Item" not in ddb.get_item(TableName=t, Key=composite_table.key(uid, 2), ConsistentRead=True)
        # Reads, and writes of lists the new node has registered, are unaffected.
        assert dax.get_item(TableName=t, Key=composite_table.key(uid, 1))["Item"]["beta"] == {"S": "B1"}
        dax.put_item(TableName=t, Item={**composite_table.key(uid, 3), "delta": {"S": "D3"}})
        stored = ddb.get_item(TableName=t, Key=composite_table.key(uid, 3), ConsistentRead=True)["Item"]
        assert stored["delta"] == {"S": "D3"}
    finally:
        dax.close()


def test_registry_file_survives_a_torn_last_line(tmp_path):
    from daxlocal.registry import AttributeListRegistry

    path = tmp_path / "registry.jsonl"
    first = AttributeListRegistry(path)
    ident = first.id_for(["a", "b"])
    with path.open("a") as fh:
        fh.write('["torn", "li')  # a crash mid-append
    second = AttributeListRegistry(path)
    assert second.names_for(ident) == ("a", "b")
    other = second.id_for(["c"])
    assert AttributeListRegistry(path).names_for(other) == ("c",)


def test_management_command_runs_the_node(infra, tmp_path, composite_table, uid):
    import json
    import sys
    import urllib.request

    port, stats_port = procs.free_port(), procs.free_port()
    proc = procs.spawn([sys.executable, "manage.py", "run_dax_node", "--port", str(port), "--dynamodb-endpoint",
                         infra["dynamodb_endpoint"], "--stats-port", str(stats_port), "--query-ttl-millis", "0"],
                        tmp_path / "command.log", cwd=procs.ROOT)
    try:
        procs.wait_for_port("127.0.0.1", port, timeout=30, proc=proc, name="run_dax_node")
        procs.wait_for_port("127.0.0.1", stats_port, timeout=10, proc=proc, name="run_dax_node stats")
        dax = _client(port)
        try:
            dax.put_item(TableName=composite_table.name, Item={**composite_table.key(uid), "v": {"S": "x"}})
            assert dax.get_item(TableName=composite_table.name, Key=composite_table.key(uid))["Item"]["v"] == {"S": "x"}
        finally:
            dax.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats") as response:
            counters = json.load(response)
        assert counters["PutItemRequestCount"] == 1 and counters["ItemCacheHits"] == 1
        assert counters["Config"]["query-ttl-millis"] == 0
    finally:
        stop(proc)
    assert proc.returncode == 0  # SIGTERM is a clean shutdown
