"""The raw decoder (sessions_app/selectors/raw.py) against PynamoDB's own model building: on
random stored items, the same attribute values and the same presenter output (the context
cache's bytes and the session page are built from these)."""

from __future__ import annotations

import zlib
from datetime import datetime, timezone

from hypothesis import given, settings as hsettings, strategies as st
from pynamodb.attributes import (
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)

from sessions_app.models import SessionMeta, SessionStatus, Summary, Turn
from sessions_app.models.table import CompressedTextAttribute
from sessions_app.selectors.presenters import json_bytes, session_dict, summary_dict, turn_dict
from sessions_app.selectors.raw import item_decode, session_decoder, summary_decoder, turn_decoder

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["こんにちは、注文した漫画が届きません", "ワンピース 第107巻", "", "🙂 emoji", "Ｆｕｌｌ width"])
NUMBER = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10**6, max_value=10**6).map(str),
    st.sampled_from(["0", "12", "12.50", "1e3", "-0.5", "3.14159", "-0", "-12", "1E+2", "10"]),
)
DATETIME = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+0000"))


def _value(attr):
    if isinstance(attr, CompressedTextAttribute):
        return TEXT.map(lambda t: {"B": zlib.compress(t.encode("utf-8"), 6)})
    if isinstance(attr, UTCDateTimeAttribute):
        return DATETIME.map(lambda v: {"S": v})
    if isinstance(attr, TTLAttribute):
        return st.integers(0, 4 * 10**9).map(lambda v: {"N": str(v)})
    if isinstance(attr, NumberAttribute):
        return NUMBER.map(lambda v: {"N": v})
    if isinstance(attr, ListAttribute):
        return st.lists(TEXT, max_size=4).map(lambda v: {"L": [{"S": x} for x in v]})
    if isinstance(attr, UnicodeAttribute):
        if attr.attr_name == "status":
            return st.sampled_from(SessionStatus.ALL).map(lambda v: {"S": v})
        return TEXT.map(lambda v: {"S": v})
    raise AssertionError(f"no strategy for {attr!r}")


@st.composite
def items(draw, model, *, required=()):
    """A stored item of ``model``: each attribute present, absent, NULL or empty (the key
    attributes and ``required`` always present)."""
    item = {"type": {"S": model._get_discriminator_attribute().get_discriminator(model)}}
    for name, attr in model.get_attributes().items():
        if name == "type":
            continue
        always = name in ("pk", "sk") or name in required
        how = "value" if always else draw(st.sampled_from(["value", "value", "absent", "null"]))
        if how == "value":
            item[attr.attr_name] = draw(_value(attr))
        elif how == "null":
            item[attr.attr_name] = {"NULL": True}
    if draw(st.booleans()):
        item["not_declared"] = {"S": "ignored"}
    return item


def _same_attributes(model, decoder, item):
    built = model.from_raw_data(item)
    view = decoder.decode(item)
    assert view.attributes() == built.attribute_values
    assert item_decode(item).attributes() == view.attributes()
    return built, view


@hsettings(max_examples=150, deadline=None)
@given(items(SessionMeta, required=("session_id", "customer_id", "channel", "started_at")))
def test_session_items_decode_as_the_model_does(item):
    built, view = _same_attributes(SessionMeta, session_decoder, item)
    assert json_bytes(session_dict(view)) == json_bytes(session_dict(built))


@hsettings(max_examples=150, deadline=None)
@given(items(Turn, required=("seq", "role", "text", "created_at", "client_msg_id")))
def test_turn_items_decode_as_the_model_does(item):
    built, view = _same_attributes(Turn, turn_decoder, item)
    assert json_bytes(turn_dict(view)) == json_bytes(turn_dict(built))


@hsettings(max_examples=100, deadline=None)
@given(items(Summary, required=("through_seq", "text", "generator", "created_at")))
def test_summary_items_decode_as_the_model_does(item):
    built, view = _same_attributes(Summary, summary_decoder, item)
    assert json_bytes(summary_dict(view)) == json_bytes(summary_dict(built))


@hsettings(max_examples=50, deadline=None)
@given(items(SessionMeta), items(Turn), items(Summary))
def test_any_attribute_may_be_absent_or_null(meta, turn, summary):
    _same_attributes(SessionMeta, session_decoder, meta)
    _same_attributes(Turn, turn_decoder, turn)
    _same_attributes(Summary, summary_decoder, summary)


def test_defaults_are_fresh_per_item():
    item = {"PK": {"S": "SESSION#a"}, "SK": {"S": "META"}, "type": {"S": "session"}}
    first, second = session_decoder.decode(item), session_decoder.decode(item)
    assert first.tags == [] and first.tags is not second.tags
    assert first.locale == "en" and first.status == SessionStatus.ACTIVE and first.turn_count == 0
