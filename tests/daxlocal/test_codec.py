"""Property tests of the node's codecs, with the real client's own encoders and decoders as the oracle."""

from __future__ import annotations

from decimal import Decimal

import pytest
from amazondax import AttributeValueDecoder as ClientAVDecoder
from amazondax import AttributeValueEncoder as ClientAVEncoder
from amazondax import Assemblers, CborSExprGenerator
from amazondax import LexDecimal as ClientLexDecimal
from amazondax.CborEncoder import DYNAMODB_CONTEXT
from amazondax.DaxCborDecoder import DaxCborDecoder
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from daxlocal import cbor, codec, expressions as ex
from daxlocal.handlers import _cc_blob, _icm_blob, _tx_cc_map
from tests.daxlocal.helpers import norm

settings.register_profile("dax", deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("dax")


def client_decoder(data: bytes) -> DaxCborDecoder:
    """The client's decoder over a byte buffer (the same `more` contract its tube uses)."""
    state = {"pos": 0}

    def more(buf, n):
        if state["pos"] >= len(data):
            return -1
        buf += data[state["pos"]:state["pos"] + n]
        state["pos"] += n
        return n

    return DaxCborDecoder(more)


# ------------------------------------------------------------------------------------------ strategies

@st.composite
def numbers(draw) -> str:
    """DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 .. 9.99E+125, in varied spellings."""
    if draw(st.booleans()):
        return str(draw(st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1)))
    digits = draw(st.text("0123456789", min_size=1, max_size=38)).lstrip("0") or "0"
    exponent = draw(st.integers(min_value=-120, max_value=100))
    assume(digits == "0" or -130 <= len(digits) - 1 + exponent <= 125)
    sign = draw(st.sampled_from(["", "-"])) if digits != "0" else ""  # the client itself crashes on -0E..
    style = draw(st.sampled_from(["E", "e", "point"]))
    if style == "point" and exponent < 0 and -exponent <= 40:
        whole, frac = digits[:exponent] or "0", digits[exponent:].rjust(-exponent, "0")
        return f"{sign}{whole}.{frac}"
    return f"{sign}{digits}{'e' if style == 'e' else 'E'}{exponent}"


names = st.text(min_size=1, max_size=8)
scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=20)),
    st.builds(lambda n: {"N": n}, numbers()),
    st.builds(lambda b: {"B": b}, st.binary(max_size=20)),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda v: {"SS": v}, st.lists(st.text(max_size=5), min_size=1, max_size=4, unique=True)),
    st.builds(lambda v: {"NS": v}, st.lists(numbers(), min_size=1, max_size=4, unique=True)),
    st.builds(lambda v: {"BS": v}, st.lists(st.binary(max_size=5), min_size=1, max_size=4, unique=True)),
)
attribute_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.builds(lambda v: {"L": v}, st.lists(inner, max_size=4)),
                            st.builds(lambda v: {"M": v}, st.dictionaries(names, inner, max_size=4))),
    max_leaves=12,
)
key_types = st.sampled_from(["S", "N", "B"])


@st.composite
def key_values(draw, typ: str) -> dict:
    if typ == "S":
        return {"S": draw(st.text(min_size=1, max_size=20))}
    if typ == "B":
        return {"B": draw(st.binary(min_size=1, max_size=20))}
    return {"N": draw(numbers())}


@st.composite
def keys(draw):
    hash_type = draw(key_types)
    range_type = draw(st.one_of(st.none(), key_types))
    schema = [("h", hash_type)] + ([("r", range_type)] if range_type else [])
    key = {"h": draw(key_values(hash_type))}
    if range_type:
        key["r"] = draw(key_values(range_type))
    return schema, key


def client_schema(schema):
    return [{"AttributeName": n, "AttributeType": t} for n, t in schema]


def as_client_spells(av):
    """The AV after a round trip through the client's number decoding (compare numbers by value)."""
    return norm(av)


# ------------------------------------------------------------------------------------------ LexDecimal

@given(numbers())
def test_lexdecimal_encoding_matches_the_client(text):
    d = DYNAMODB_CONTEXT.create_decimal(text)
    assert codec.lex_encode(d) == ClientLexDecimal.encode(d)


@given(numbers())
def test_lexdecimal_decodes_the_clients_encoding(text):
    d = DYNAMODB_CONTEXT.create_decimal(text)
    decoded = codec.lex_decode(ClientLexDecimal.encode(d))
    assert decoded == d
    assert decoded == ClientLexDecimal.decode_all(ClientLexDecimal.encode(d))


@given(numbers(), numbers())
def test_lexdecimal_byte_order_is_numeric_order(a, b):
    da, db = Decimal(a), Decimal(b)
    ea, eb = codec.lex_encode(a), codec.lex_encode(b)
    if da < db:
        assert ea < eb
    elif da > db:
        assert ea > eb


@pytest.mark.parametrize("text, hexed", [
    ("1", "c11c0000"), ("100", "c31c0020"), ("1E+2", "c31c0000"), ("-1", "3ee3fff0"),
    ("1.5", "c1288010"), ("0.001", "be1c0000"), ("-123.45", "3cde231ff8"), ("0", "80"),
])
def test_lexdecimal_known_vectors(text, hexed):
    assert codec.lex_encode(text).hex() == hexed
    assert codec.lex_decode(bytes.fromhex(hexed)) == Decimal(text)


# ------------------------------------------------------------------------------------------ attribute values

@given(attribute_values)
def test_attribute_value_encoding_matches_the_client_byte_for_byte(av):
    assert codec.av_bytes(av) == ClientAVEncoder.encode_attribute_value(av)


@given(attribute_values)
def test_client_decodes_the_nodes_attribute_values(av):
    decoded = ClientAVDecoder._decode_attribute_value(client_decoder(codec.av_bytes(av)))
    assert as_client_spells(decoded) == as_client_spells(av)


@given(attribute_values)
def test_node_decodes_the_clients_attribute_values(av):
    decoded = codec.av_from_cbor(cbor.loads(ClientAVEncoder.encode_attribute_value(av)))
    assert norm(decoded) == norm(av)


@given(numbers())
def test_number_spelling_survives_the_round_trip_like_the_client(text):
    """The node writes a number so that the client reads back the spelling its own decoder produces."""
    client_view = ClientAVDecoder._decode_attribute_value(client_decoder(codec.av_bytes({"N": text})))
    own_view = ClientAVDecoder._decode_attribute_value(client_decoder(ClientAVEncoder.encode_attribute_value(
        {"N": text})))
    assert client_view == own_view


@given(numbers())
def test_canonical_number_is_numerically_equal_and_exponent_free(text):
    canonical = codec.canonical_number(text)
    assert Decimal(canonical) == Decimal(text)
    assert "E" not in canonical and "e" not in canonical
    assert codec.canonical_number(canonical) == canonical


# ------------------------------------------------------------------------------------------ keys and blobs

@given(keys())
def test_key_encoding_matches_the_client(schema_and_key):
    schema, key = schema_and_key
    assert codec.encode_key(key, schema) == ClientAVEncoder.encode_key(key, client_schema(schema))


@given(keys())
def test_keys_round_trip_between_node_and_client(schema_and_key):
    schema, key = schema_and_key
    from_client = codec.decode_key(ClientAVEncoder.encode_key(key, client_schema(schema)), schema)
    assert norm(from_client) == norm(key)
    wrapped = bytes(cbor.Encoder().bytes(codec.encode_key(key, schema)))
    by_client = ClientAVDecoder._decode_key_bytes(client_decoder(wrapped), client_schema(schema))
    assert norm(by_client) == norm(key)


@given(keys())
def test_numerically_equal_keys_have_the_same_cache_identity(schema_and_key):
    schema, key = schema_and_key
    respelled = {n: ({"N": f"{Decimal(av['N']):E}"} if "N" in av else av) for n, av in key.items()}
    assert codec.cache_key(respelled, schema) == codec.cache_key(key, schema)


@given(st.dictionaries(names, attribute_values, min_size=1, max_size=5))
def test_compound_keys_round_trip(key):
    assert norm(codec.decode_compound_key(ClientAVEncoder.encode_compound_key(key))) == norm(key)
    decoded = ClientAVDecoder._decode_compound_key(client_decoder(codec.encode_compound_key(key)))
    assert norm(decoded) == norm(key)


@given(st.dictionaries(names, attribute_values, max_size=6), st.integers(min_value=1, max_value=2**63))
def test_values_blobs_from_the_client_decode(item, list_id):
    attr_names = tuple(sorted(item))
    blob = ClientAVEncoder.encode_values(item, [], attr_names, list_id)
    ident, values = codec.decode_values(blob)
    assert ident == list_id
    assert [norm(v) for v in values] == [norm(item[n]) for n in attr_names]


# ------------------------------------------------------------------------------------------ raw CBOR

plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
              st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=15,
)


@given(plain_values)
def test_client_decodes_the_nodes_cbor(value):
    assert client_decoder(cbor.dumps(value)).decode_object() == value


@given(plain_values)
def test_cbor_round_trips(value):
    assert cbor.loads(cbor.dumps(value)) == value


@given(attribute_values)
def test_every_truncation_of_an_item_is_detected(av):
    data = ClientAVEncoder.encode_attribute_value(av)
    for cut in range(len(data)):
        with pytest.raises(cbor.CborError):
            cbor.loads(data[:cut])


@pytest.mark.parametrize("data", [b"\x1c", b"\xbf\x01", b"\x5f\x01\xff", b"\x7b" + b"\xff" * 8, b"\xff",
                                  b"\x62\xff\xfe", b"\x9f" * 500])
def test_malformed_cbor_is_rejected(data):
    with pytest.raises(cbor.CborError):
        cbor.loads(data)


# ------------------------------------------------------------------------------------------ capacity / metrics blobs

def test_consumed_capacity_blob_decodes_in_the_client():
    cc = {"TableName": "T", "CapacityUnits": 3.5, "Table": {"CapacityUnits": 1.5},
          "GlobalSecondaryIndexes": {"g": {"CapacityUnits": 1.0}}, "LocalSecondaryIndexes": {"l": {"CapacityUnits": 1.0}}}
    assert Assemblers._decode_consumed_capacity(client_decoder(_cc_blob(cc))) == cc


def test_transaction_capacity_map_decodes_in_the_client():
    cc = {"TableName": "T", "CapacityUnits": 4.0, "WriteCapacityUnits": 4.0, "Table": {"CapacityUnits": 4.0},
          "GlobalSecondaryIndexes": {"g": {"CapacityUnits": 2.0, "WriteCapacityUnits": 2.0}}}
    decoded = client_decoder(cbor.dumps([_tx_cc_map(cc)])).decode_array()
    assert Assemblers._decode_consumed_capacity_from_dict(decoded[0]) == cc


def test_item_collection_metrics_blob_decodes_in_the_client():
    metrics = {"ItemCollectionKey": {"pk": {"S": "a"}}, "SizeEstimateRangeGB": [0.0, 1.0]}
    wrapped = bytes(cbor.Encoder().bytes(_icm_blob(metrics)))
    schema = [{"AttributeName": "pk", "AttributeType": "S"}]
    assert Assemblers._decode_item_collection_metrics(client_decoder(wrapped), schema) == metrics


# ------------------------------------------------------------------------------------------ expressions

def recompile(kind: str, compiled: bytes) -> bytes:
    """Decompile the client's compiled expression, then compile the node's text with the client again."""
    ph = ex.Placeholders()
    if kind == "Update":
        text = ex.update_text(compiled, ph, "u")
    else:
        text = ex.condition_text(compiled, ph, "c")
    args = {"Condition": None, "KeyCondition": None, "Filter": None, "Update": None}
    args[kind] = text
    out = CborSExprGenerator.encode_expressions(args["Condition"], args["KeyCondition"], args["Filter"],
                                                args["Update"], None, ph.names, ph.values)
    return getattr(out, kind)


def compile_(kind: str, text: str, names: dict, values: dict) -> bytes:
    args = {"Condition": None, "KeyCondition": None, "Filter": None, "Update": None}
    args[kind] = text
    out = CborSExprGenerator.encode_expressions(args["Condition"], args["KeyCondition"], args["Filter"],
                                                args["Update"], None, names, values)
    return getattr(out, kind)


VALUES = {f":v{i}": av for i, av in enumerate([{"S": "x"}, {"N": "2.5"}, {"L": [{"N": "1"}]}, {"SS": ["a"]},
                                                {"NULL": True}, {"B": b"\x01"}])}
EXPRESSIONS = [
    ("KeyCondition", "pk = :v0"),
    ("KeyCondition", "pk = :v0 AND sk BETWEEN :v1 AND :v1"),
    ("KeyCondition", "#p = :v0 AND begins_with(#s, :v0)"),
    ("Condition", "attribute_not_exists(pk) OR (a.b[2].c <> :v1 AND NOT contains(#s, :v0))"),
    ("Condition", "size(l) >= :v1 AND attribute_type(m, :v0) AND x IN (:v0, :v1, :v4)"),
    ("Filter", "NOT (a < :v1 OR a > :v1) AND b <= :v5 AND (c = :v2 OR d = :v3 OR e = :v4)"),
    ("Update", "SET a = :v0, b.c[1] = if_not_exists(b.c[1], :v1), l = list_append(:v2, l), n = n - :v1"),
    ("Update", "REMOVE a, b[0] ADD s :v3, n :v1 DELETE t :v3 SET #p = #s + :v1"),
]


@pytest.mark.parametrize("kind, text", EXPRESSIONS)
def test_decompiled_expressions_compile_back_to_the_same_bytes(kind, text):
    names = {k: v for k, v in {"#p": "pk", "#s": "sk"}.items() if k in text}
    values = {k: v for k, v in VALUES.items() if k in text}
    compiled = compile_(kind, text, names, values)
    assert recompile(kind, compiled) == compiled


operands = st.sampled_from(["a", "b.c", "l[1]", "m.n[0].o", "#p", ":v0", ":v1", ":v5"])
comparisons = st.builds(lambda a, op, b: f"{a} {op} {b}", operands, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]),
                        operands)
functions = st.one_of(
    st.builds(lambda p: f"attribute_exists({p})", st.sampled_from(["a", "b.c", "#p"])),
    st.builds(lambda p: f"attribute_not_exists({p})", st.sampled_from(["a", "l[1]"])),
    st.builds(lambda p, v: f"begins_with({p}, {v})", st.sampled_from(["a", "#p"]), st.sampled_from([":v0", ":v5"])),
    st.builds(lambda p, v: f"contains({p}, {v})", st.sampled_from(["a", "l"]), st.sampled_from([":v0", ":v1"])),
    st.builds(lambda p, v: f"size({p}) > {v}", st.sampled_from(["a", "m.n"]), st.sampled_from([":v1"])),
    st.builds(lambda p: f"{p} BETWEEN :v1 AND :v1", st.sampled_from(["a", "b.c"])),
    st.builds(lambda p: f"{p} IN (:v0, :v1)", st.sampled_from(["a", "#p"])),
)
conditions = st.recursive(
    st.one_of(comparisons, functions),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) AND ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) OR ({b})", inner, inner),
        st.builds(lambda a: f"NOT ({a})", inner),
    ),
    max_leaves=8,
)


@given(conditions)
def test_random_conditions_survive_decompilation(text):
    names = {"#p": "pk"} if "#p" in text else {}
    values = {k: v for k, v in VALUES.items() if k in text}
    compiled = compile_("Condition", text, names, values)
    assert recompile("Condition", compiled) == compiled


@pytest.mark.parametrize("projection, paths", [
    ("a", [("a",)]),
    ("#n, l[1].x, m.a.b", [("name",), ("l", 1, "x"), ("m", "a", "b")]),
])
def test_projections_decompile_to_document_paths(projection, paths):
    compiled = CborSExprGenerator.encode_expressions(None, None, None, None, projection, {"#n": "name"}
                                                     if "#n" in projection else {}, {}).Projection
    assert ex.projection_paths(compiled) == paths


def test_projection_of_an_item_maps_ordinals_to_present_paths():
    item = {"a": {"S": "x"}, "l": {"L": [{"N": "1"}, {"M": {"x": {"S": "deep"}}}]}}
    assert ex.project(item, [("a",), ("l", 1, "x"), ("l", 5), ("missing",)]) == {0: {"S": "x"}, 1: {"S": "deep"}}


@pytest.mark.parametrize("paths", [[("a",), ("a", "b")], [("l", 1), ("l", 1)], [("m",), ("m",)]])
def test_overlapping_projection_paths_are_rejected(paths):
    with pytest.raises(ex.ExpressionError):
        ex.check_projection(paths)
