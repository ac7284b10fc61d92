"""GET /api/v1/search: transcript search with the listing's filters, keyset cursors, the read
scope, errors naming the field, Japanese and English — and the whole path through the real
change feed (appends over HTTP → a StreamConsumer → found by the API; a close moves the status
filter).

The search index is one SQLite file for the whole test session, so every test searches within a
customer of its own (``customer``) or for a word of its own."""

from __future__ import annotations

import time
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mangaassist.wsgi import application
from sessions_app import services
from sessions_app.models import ApiKey
from sessions_app.services.api_keys import api_key_create
from sessions_app.services.search_index import search_reindex_sessions
from sessions_app.services.turns import turn_append
from tests.api.conftest import error_of, start_session
from tests.builders import at, make_session
from tests.streams.conftest import drain, make_consumer, stream  # noqa: F401 — the fixture

FOUND_WITHIN_SECONDS = 10.0  # appended over HTTP → searchable through the change feed


@pytest.fixture
def customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def unique_word() -> str:
    """A Latin word no other test indexes (letters only: digits would be numbers of their own)."""
    return "zq" + "".join(chr(ord("g") + int(c)) if c.isdigit() else c for c in uuid.uuid4().hex[:10])


def _session(customer: str, *texts: str, channel: str = "web", started_at=None) -> str:
    """A session with these turns (user, assistant, …), put in the index at once."""
    meta = make_session(customer_id=customer, channel=channel, started_at=started_at)
    for n, text in enumerate(texts, 1):
        turn_append(session_id=meta.session_id, role="user" if n % 2 else "assistant", text=text, client_msg_id=f"m-{n}")
    search_reindex_sessions(session_ids=[meta.session_id])
    return meta.session_id


def _hits(response) -> list[tuple[str, int]]:
    assert response.status_code == 200, response.content
    return [(s["session_id"], t["seq"]) for s in response.json()["results"] for t in s["turns"]]


def test_the_body_is_sessions_with_their_matching_turns_and_plain_snippets(api, read_key, customer):
    session_id = _session(customer, "ＯＮＥ ＰＩＥＣＥの105巻はありますか", "はい、在庫がございます。", channel="line")
    response = api.get("/search", key=read_key, q="one piece 105", customer_id=customer)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results", "cursor"} and body["cursor"] is None
    assert len(body["results"]) == 1
    result = body["results"][0]
    assert {"session_id", "customer_id", "turns"} <= set(result)
    assert (result["session_id"], result["customer_id"], result["channel"]) == (session_id, customer, "line")
    [turn] = result["turns"]
    assert {"seq", "role", "snippet"} <= set(turn)
    assert (turn["seq"], turn["role"], turn["kind"]) == (1, "user", "turn")
    assert turn["snippet"] == "ＯＮＥ ＰＩＥＣＥの105巻はありますか"  # plain text, the original characters
    assert [turn["snippet"][a:b] for a, b in turn["highlights"]] == ["ＯＮＥ", "ＰＩＥＣＥ", "105"]
    assert turn["created_at"].endswith("Z")


def test_japanese_and_english_examples(api, customer):
    full_width = _session(customer, "ＯＮＥ ＰＩＥＣＥ 105巻")
    volume = _session(customer, "105巻の発売日はいつですか")
    english = _session(customer, "Do you have One Piece volume 105 in stock?")
    jujutsu = _session(customer, "呪術廻戦の最新刊", "the newest volume of Jujutsu Kaisen")

    def found(q: str) -> set[str]:
        return {s for s, _ in _hits(api.get("/search", q=q, customer_id=customer))}

    assert found("one piece 105") == {full_width, english}  # full-width letters fold; every word must match
    assert found("105") == {full_width, volume, english}  # "105巻" holds the number 105
    assert found("巻") == {full_width, volume}  # one kanji, wherever it stands
    assert found("ワンピース") == set()
    assert found("volumes") == {english, jujutsu}  # stemmed: volumes = volume
    assert found("最新") == {jujutsu}
    assert found("廻戦 newest") == set()  # every part in one turn: these are in two


def test_summaries_are_found_as_the_sessions_summary(api, customer):
    from sessions_app.selectors.sessions import session_get
    from sessions_app.services.summaries import summary_write

    session_id = _session(customer, "配送について", "確認します")
    summary_write(session_id=session_id, through_seq=2, text="お客様は配送の遅れを問い合わせた", generator="test",
                  expires_at=session_get(session_id=session_id).expires_at)
    search_reindex_sessions(session_ids=[session_id])
    [result] = api.get("/search", q="問い合わせ", customer_id=customer).json()["results"]
    assert [(t["seq"], t["role"], t["kind"]) for t in result["turns"]] == [(2, "summary", "summary")]


def test_filters_combine(api, customer):
    keep = _session(customer, "返品の手続き", channel="app", started_at=at("2026-11-20"))
    _session(customer, "返品の手続き", channel="web", started_at=at("2026-11-20", 1))
    _session(customer, "返品の手続き", channel="app", started_at=at("2026-11-19"))
    closed = _session(customer, "返品の手続き", channel="app", started_at=at("2026-11-20", 2))
    services.session_close(session_id=closed, final_summary=False)
    search_reindex_sessions(session_ids=[closed])
    other = f"{customer}-other"
    _session(other, "返品の手続き", channel="app", started_at=at("2026-11-20", 3))

    def found(**params) -> list[str]:
        return [s for s, _ in _hits(api.get("/search", q="返品", **params))]

    day = {"day_from": "2026-11-20", "day_to": "2026-11-20"}
    assert found(customer_id=customer, channel="app", status="active", **day) == [keep]
    assert found(customer_id=customer, status="closed") == [closed]
    assert set(found(customer_id=customer, channel="app", **day)) == {keep, closed}
    assert len(found(customer_id=customer)) == 4
    assert len(found(customer_id=other)) == 1


@pytest.mark.parametrize("order", ["newest", "relevance"])
def test_the_cursor_pages_over_every_hit_once(api, customer, order):
    word = unique_word()
    made = set()
    for n in range(4):  # 4 sessions × 2 matching turns = 8 hits, 3 per page
        session_id = _session(customer, f"{word} question {n}", f"an answer about {word} {'and more ' * n}")
        made |= {(session_id, 1), (session_id, 2)}
    seen, cursor, pages = [], None, 0
    while True:
        params = {"q": word, "order": order, "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = api.get("/search", **params).json()
        page = [(s["session_id"], t["seq"]) for s in body["results"] for t in s["turns"]]
        assert len(page) <= 3
        seen += page
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8 and set(seen) == made
    assert pages == 3


def test_newest_comes_first(api, customer):
    first = _session(customer, "まんが おすすめ")
    second = _session(customer, "まんが ください")
    assert [s for s, _ in _hits(api.get("/search", q="まんが", customer_id=customer))] == [second, first]


def test_the_read_scope_is_needed(api, read_key, write_key, customer):
    _session(customer, "hello there")
    assert api.get("/search", key=read_key, q="hello", customer_id=customer).status_code == 200
    assert api.get("/search", key=write_key, q="hello", customer_id=customer).status_code == 200  # write implies read

    response = api.get("/search", key=None, q="hello")
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"
    assert api.get("/search", key="not-a-key", q="hello").status_code == 401

    # A key whose scope grants no reading (a scope other than read and write).
    api_key, raw = api_key_create(name="metrics-only", scope="read")
    ApiKey.objects.filter(pk=api_key.pk).update(scope="metrics")
    response = api.get("/search", key=raw, q="hello")
    assert response.status_code == 403 and error_of(response)["code"] == "forbidden"


@pytest.mark.parametrize("params, field", [
    ({}, "q"),
    ({"q": ""}, "q"),
    ({"q": "   "}, "q"),
    ({"q": "!!! ???"}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"q": "hello", "order": "oldest"}, "order"),
    ({"q": "hello", "cursor": "garbage"}, "cursor"),
    ({"q": "hello", "cursor": "W10"}, "cursor"),
    ({"q": "hello", "day_from": "2026-13-01"}, "day_from"),
    ({"q": "hello", "day_to": "yesterday"}, "day_to"),
    ({"q": "hello", "day_from": "2026-11-21", "day_to": "2026-11-20"}, "day_from"),
    ({"q": "hello", "channel": "fax"}, "channel"),
    ({"q": "hello", "status": "open"}, "status"),
    ({"q": "hello", "customer_id": "bad id"}, "customer_id"),
    ({"q": "hello", "limit": "0"}, "limit"),
    ({"q": "hello", "limit": "201"}, "limit"),
    ({"q": "hello", "page": "2"}, "page"),
])
def test_bad_input_is_400_naming_the_field(api, params, field):
    response = api.get("/search", **params)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["field"] == field, error
    assert error["code"] == "invalid_input"


def test_a_cursor_of_the_other_order_is_refused(api, customer):
    word = unique_word()
    for n in range(3):
        _session(customer, f"{word} {n}")
    cursor = api.get("/search", q=word, limit=1).json()["cursor"]
    assert cursor
    response = api.get("/search", q=word, limit=1, cursor=cursor, order="relevance")
    assert response.status_code == 400 and error_of(response)["field"] == "cursor"


def test_the_openapi_document_shows_the_operation(api):
    doc = api.client.get("/api/v1/openapi.json").json()
    operation = doc["paths"]["/api/v1/search"]["get"]
    assert operation["operationId"] == "transcript_search"
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"q", "day_from", "day_to", "customer_id", "status", "channel", "order", "cursor", "limit"}
    assert params["q"]["required"] is True
    assert set(operation["responses"]) >= {"200", "400", "401", "403"}
    assert operation["security"] == [{"ApiKeyAuth": []}]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    body = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body["required"]) == {"results", "cursor"}


def test_appended_over_http_found_through_the_change_feed_then_the_close_moves_the_status_filter(api, stream, customer):
    session_id = start_session(api, customer_id=customer, channel="line")
    for n, (role, text) in enumerate([("user", "進撃の巨人の34巻はありますか"), ("assistant", "はい、在庫がございます")], 1):
        response = api.post(f"/sessions/{session_id}/turns", {"role": role, "text": text, "client_msg_id": f"m-{n}"})
        assert response.status_code == 201, response.content
    appended = time.monotonic()
    consumer = make_consumer(stream)

    def found(**params) -> list[tuple[str, int]]:
        return _hits(api.get("/search", q="巨人 34", customer_id=customer, **params))

    drain(consumer, until=lambda: found() == [(session_id, 1)], timeout=FOUND_WITHIN_SECONDS)
    assert time.monotonic() - appended < FOUND_WITHIN_SECONDS
    assert found(status="active", channel="line") == [(session_id, 1)]
    assert found(status="closed") == []

    assert api.post(f"/sessions/{session_id}/close").status_code == 200
    drain(consumer, until=lambda: found(status="closed") == [(session_id, 1)], timeout=FOUND_WITHIN_SECONDS)
    assert found(status="active") == []
    assert _hits(api.get("/search", q="在庫", customer_id=customer, status="closed")) == [(session_id, 2)]


# --- the OpenAPI document, by schemathesis (as tests/api/test_schema.py does for every operation) ---
# The search's own rules OpenAPI cannot state — a cursor is a token the API made, a query needs a
# letter, digit or Japanese character, a day range is ordered and spans at most MAX_DAYS — are
# 400s naming the field for schema-valid values, so "valid data must be accepted" does not apply;
# every other check (no 5xx, every response, errors included, matches the document) does.
search_schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application).include(path="/api/v1/search")
search_schema.config.output.sanitization.update(enabled=False)


@pytest.fixture
def indexed_hits(ddb, redis_client):
    """Something to find, so generated queries reach the success path too."""
    _session("cust-schema", "0 00 a A ＯＮＥ ＰＩＥＣＥ 105巻", "000 aaa 巻")


@search_schema.parametrize()
@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.filter_too_much])
def test_search_conforms_to_its_openapi_document(case, write_key, indexed_hits):
    case.call_and_validate(headers={"Authorization": f"Bearer {write_key}"}, excluded_checks=[positive_data_acceptance])


def test_an_unreadable_search_index_is_503_not_500(api, read_key, settings, tmp_path):
    from sessions_app.search import search_engines_reset

    (tmp_path / "index").mkdir()
    settings.SEARCH_SQLITE_PATH = str(tmp_path / "index")  # a directory: SQLite cannot open it
    search_engines_reset()
    response = api.get("/search", key=read_key, q="在庫")
    assert response.status_code == 503
    assert error_of(response)["code"] == "store_unavailable"
