"""The routed connection: what goes to DAX, what goes straight to DynamoDB, and falling back."""

import json
import os
import signal
import socket
import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest
from django.test import Client
from pynamodb.exceptions import PutError

from devtools import procs
from devtools.dax import start_dax_node
from sessions_app import dynamo, keys, selectors, services
from sessions_app.models import SessionMeta
from sessions_app.services.api_keys import api_key_create
from tests.builders import make_session


@pytest.fixture
def node(infra, table_name, settings):
    yield from _node(infra, table_name, settings, dynamodb_endpoint=infra["dynamodb_endpoint"])


class _Relay:
    """A real TCP hop between the DAX node and DynamoDB Local. While ``holding()``, DynamoDB's
    answers to the node are dropped: a write the node forwards still reaches DynamoDB and
    commits, but the node never hears back — a DAX node that stalls after forwarding."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._hold = threading.Event()
        self.withheld = threading.Event()  # DynamoDB answered while holding
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [down, up]
            threading.Thread(target=self._pipe, args=(down, up, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers and self._hold.is_set():
                    self.withheld.set()
                    continue
                dst.sendall(data)
        except OSError:
            pass

    @contextmanager
    def holding(self):
        self._hold.set()
        try:
            yield
        finally:
            self._hold.clear()

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def relay(infra):
    hop = _Relay(int(infra["dynamodb_endpoint"].rsplit(":", 1)[1]))
    yield hop
    hop.close()


@pytest.fixture
def relayed_node(infra, table_name, settings, relay):
    """A DAX node that reaches DynamoDB Local through ``relay``."""
    yield from _node(infra, table_name, settings, dynamodb_endpoint=f"http://127.0.0.1:{relay.port}")


def _node(infra, table_name, settings, *, dynamodb_endpoint):
    from sessions_app.services import table_delete, table_ensure

    port, stats_port = procs.free_port(), procs.free_port()
    args = dict(dynamodb_endpoint=dynamodb_endpoint, stats_port=stats_port, log=infra["logs"] / "dax-fault.log")
    state = {"proc": start_dax_node(port, **args)}
    settings.DYNAMODB_TABLE = table_name
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()
    table_ensure(table_name=table_name)
    settings.DAX_ENDPOINTS = [f"127.0.0.1:{port}"]
    settings.DAX_BREAKER_FAILURES = 1
    settings.DAX_BREAKER_RESET_SECONDS = 0.2
    dynamo.reset_connections()

    def stats():
        with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats", timeout=5) as response:
            return json.load(response)

    def kill():
        procs.stop(state["proc"])

    def restart():
        state["proc"] = start_dax_node(port, **args)

    def freeze(stopped: bool):
        os.killpg(state["proc"].pid, signal.SIGSTOP if stopped else signal.SIGCONT)

    yield type("Node", (), {"stats": staticmethod(stats), "kill": staticmethod(kill), "restart": staticmethod(restart),
                            "freeze": staticmethod(freeze)})
    freeze(False)
    procs.stop(state["proc"])
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()
    table_delete(table_name=table_name)


def _calls(path):
    return dynamo.route_calls().get(path, 0)


def test_eventual_reads_go_to_dax_and_consistent_reads_to_dynamodb(node):
    meta = make_session(turns=2)
    before = node.stats()
    dax, direct = _calls("dax"), _calls("dynamodb-consistent")
    selectors.session_get(session_id=meta.session_id)
    selectors.session_get(session_id=meta.session_id)
    after = node.stats()
    assert _calls("dax") == dax + 2
    assert after["GetItemRequestCount"] == before["GetItemRequestCount"] + 2
    assert after["ItemCacheHits"] > before["ItemCacheHits"]
    selectors.session_get(session_id=meta.session_id, consistent=True)
    assert _calls("dynamodb-consistent") == direct + 1
    assert node.stats()["GetItemRequestCount"] == after["GetItemRequestCount"]


def test_a_failed_condition_through_dax_is_an_answer_not_a_fallback(node):
    meta = make_session()
    fallbacks = _calls("fallback")
    duplicate = SessionMeta(meta.pk, keys.META_SK, session_id="x", customer_id="x", channel="web", started_at=meta.started_at,
                            gsi1pk="a", gsi1sk="b", gsi2pk="c", gsi2sk="d")
    with pytest.raises(PutError) as info:
        duplicate.save(condition=SessionMeta.pk.does_not_exist())
    assert info.value.cause_response_code == "ConditionalCheckFailedException"
    assert _calls("fallback") == fallbacks
    assert dynamo.dax_breaker_state() == "closed"


def test_killed_node_falls_back_without_errors_and_reads_return_to_dax_after_restart(node, client_tuning):
    meta = make_session(turns=3)
    assert selectors.context_read(session_id=meta.session_id, turns=3, min_seq=3).provenance["source"] == "dax"
    node.kill()
    for _ in range(5):  # no error reaches the caller while the node is gone
        ctx = selectors.context_read(session_id=meta.session_id, turns=3, min_seq=3)
        assert [t.seq for t in ctx.turns] == [1, 2, 3]
        assert ctx.provenance["source"] == "fallback"  # observed, whatever DAX_ENDPOINTS says
    assert _calls("fallback") >= 5
    services.turn_write(session_id=meta.session_id, role="user", text="while DAX is down", client_msg_id="down-1")
    node.restart()
    dax_before = _calls("dax")
    # Until a read is *served* by DAX: a half-open probe after the reset time may itself fail
    # while the restarted node warms up on a busy machine (it counts as a DAX call, with an
    # error, and opens the breaker again) — the next probe is the one that closes it.
    deadline_reads, served_by = 0, None
    while served_by != "dax" and deadline_reads < 400:
        served_by = selectors.context_read(session_id=meta.session_id, turns=3, min_seq=3).provenance["source"]
        deadline_reads += 1
        time.sleep(0.05)
    assert served_by == "dax"
    assert _calls("dax") > dax_before
    assert dynamo.dax_breaker_state() == "closed"
    assert node.stats()["GetItemRequestCount"] >= 1


def test_a_request_dax_failed_on_reaches_dynamodb_unchanged(node, settings):
    """The DAX client encodes requests in place; a write that times out after it was encoded
    must reach DynamoDB as the caller sent it."""
    meta = make_session()
    selectors.session_get(session_id=meta.session_id)  # the client is connected
    settings.DAX_REQUEST_TIMEOUT = 0.3
    dynamo.dax_close()
    selectors.session_get(session_id=meta.session_id)
    node.freeze(True)  # accepts connections, never answers: the request is encoded, then times out
    try:
        with SessionMeta.batch_write() as batch:
            batch.save(SessionMeta(meta.pk, keys.META_SK, session_id=meta.session_id, customer_id=meta.customer_id,
                                   channel="app", started_at=meta.started_at, turn_count=0, gsi1pk=meta.gsi1pk,
                                   gsi1sk=meta.gsi1sk, gsi2pk=meta.gsi2pk, gsi2sk=meta.gsi2sk))
    finally:
        node.freeze(False)
    assert _calls("fallback") >= 1
    assert selectors.session_get(session_id=meta.session_id, consistent=True).channel == "app"


def test_bulk_loads_bypass_dax(node):
    from sessions_app.demo import demo_sessions
    from sessions_app.services.bulk import sessions_bulk_load

    before = node.stats()
    sessions_bulk_load(specs=demo_sessions(count=3, now=make_session().started_at), threads=2)
    after = node.stats()
    assert after.get("BatchWriteItemRequestCount", 0) == before.get("BatchWriteItemRequestCount", 0)
    assert _calls("dynamodb") > 0


@pytest.fixture(params=[True, False], ids=["tuned", "stock"])
def client_tuning(request, settings):
    """DAX_CLIENT_TUNING on and off (sessions_app/dax_client_tuning.py): the same answers."""
    from sessions_app import dax_client_tuning

    settings.DAX_CLIENT_TUNING = request.param
    dynamo.dax_close()
    yield request.param
    dynamo.dax_close()
    dax_client_tuning.apply(True)


def test_context_provenance_names_the_route_each_read_actually_took(node, client_tuning):
    meta = make_session(turns=2)
    ctx = selectors.context_read(session_id=meta.session_id, turns=2, min_seq=2)
    assert ctx.provenance["source"] == "dax" and set(ctx.provenance["routes"]) == {"dax"}
    # A caller that knows of a newer turn than META shows: META is re-read strongly consistent,
    # and the label says so instead of "dax".
    lagging = selectors.context_read(session_id=meta.session_id, turns=2, min_seq=5)
    assert lagging.provenance["consistent_retry"] is True
    assert lagging.provenance["source"] == "dynamodb-consistent"
    assert "dax" in lagging.provenance["routes"] and "dynamodb-consistent" in lagging.provenance["routes"]
    # META and the turns (no summary yet, so no third read).
    assert selectors.context_read(session_id=meta.session_id, turns=2, consistent=True).provenance["routes"] == (
        "dynamodb-consistent",) * 2


def test_routes_recorded_blocks_nest_and_see_only_their_own_calls(node, client_tuning):
    meta = make_session(turns=1)
    with dynamo.routes_recorded() as outer:
        selectors.session_get(session_id=meta.session_id)
        with dynamo.routes_recorded() as inner:
            selectors.session_get(session_id=meta.session_id, consistent=True)
    assert inner.routes == ["dynamodb-consistent"] and inner.label == "dynamodb-consistent"
    assert outer.routes == ["dax", "dynamodb-consistent"] and outer.label == "dynamodb-consistent"
    with dynamo.routes_recorded() as idle:
        pass
    assert idle.label is None
    node.kill()
    with dynamo.routes_recorded() as down:
        selectors.session_get(session_id=meta.session_id)
    assert down.routes == ["fallback"]
    node.restart()


def test_a_turn_dynamodb_committed_before_dax_timed_out_is_answered_as_written_and_reaches_the_context(
        relayed_node, relay, redis_client, db, settings):
    """DAX forwards the append's transaction, DynamoDB commits it, DAX never answers: the DAX
    request times out and the routed connection retries on DynamoDB. That retry is the same
    request, so the append is this request's own write — 201, the context-cache hint raised (the
    bot's next context has the turn), the every-N-turns summary requested — not a replay."""
    settings.DAX_REQUEST_TIMEOUT = 0.5
    settings.SUMMARY_EVERY_N_TURNS = 2
    dynamo.dax_close()
    client = Client(headers={"Authorization": f"Bearer {api_key_create(name='bot', scope='write')[1]}"})
    meta = make_session()
    base = f"/api/v1/sessions/{meta.session_id}"

    def append(n):
        return client.post(f"{base}/turns", {"role": "user", "text": f"turn {n}", "client_msg_id": f"m-{n}"},
                           content_type="application/json")

    def context():
        response = client.get(f"{base}/context")
        assert response.status_code == 200, response.content
        return response["X-Context-Source"], [t["seq"] for t in response.json()["turns"]]

    assert append(1).status_code == 201
    context()
    assert context() == ("redis", [1])
    with relay.holding():
        second = append(2)
    assert relay.withheld.is_set()  # DynamoDB did answer the node: the forwarded write committed
    assert _calls("fallback") >= 1  # and the DAX request failed over to DynamoDB
    assert second.status_code == 201, second.content
    assert second.json()["seq"] == 2
    source, seqs = context()
    assert seqs == [1, 2] and source != "redis"
    stored = selectors.session_get(session_id=meta.session_id, consistent=True)
    assert stored.turn_count == 2
    assert stored.summary_state == "pending" and stored.summary_task_id
