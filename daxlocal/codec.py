"""DynamoDB attribute values, numbers, LexDecimal and key encodings as the DAX protocol carries them.

Attribute values ("AVs") are botocore's low-level form: ``{"S": str}``, ``{"N": str}``,
``{"B": bytes}``, ``{"SS": [...]}``, ``{"NS": [...]}``, ``{"BS": [...]}``, ``{"M": {...}}``,
``{"L": [...]}``, ``{"NULL": True}``, ``{"BOOL": bool}``. The node hands them to DynamoDB unchanged.

Key schemas are lists of ``(name, type)`` pairs, hash first.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any, Iterable

from . import cbor
from .cbor import Tag

# The client's (and boto3's) decimal context: 38 digits, and any rounding is an error.
DYNAMODB_CONTEXT = decimal.Context(
    Emin=-128, Emax=126, prec=38,
    traps=[decimal.Clamped, decimal.Overflow, decimal.Inexact, decimal.Rounded, decimal.Underflow],
)

# For respelling numbers without rounding (the default context keeps only 28 digits).
_EXACT = decimal.Context(prec=200, Emin=-999999, Emax=999999)

KeySchema = list  # [(name, "S"|"N"|"B"), ...], hash first


class CodecError(ValueError):
    """A value on the wire cannot be turned into a DynamoDB value (or back)."""


# ---------------------------------------------------------------------------------------------
# Numbers


def _has_fraction_or_exponent(s: str) -> bool:
    return "." in s or "e" in s or "E" in s


def number_from_cbor(obj: Any) -> str:
    """The text of a CBOR number, spelled the way the client spells it (``str(int)``/``str(Decimal)``)."""
    if isinstance(obj, bool):
        raise CodecError("boolean is not a number")
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, Tag) and obj.tag == cbor.TAG_DECIMAL:
        if not (isinstance(obj.value, list) and len(obj.value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in obj.value)):
            raise CodecError("decimal fraction must be [exponent, mantissa]")
        exponent, mantissa = obj.value
        digits = tuple(int(c) for c in str(abs(mantissa)))
        try:
            return str(DYNAMODB_CONTEXT.create_decimal((1 if mantissa < 0 else 0, digits, exponent)))
        except decimal.DecimalException as exc:
            raise CodecError(f"number out of range: {exc!r}") from exc
    if isinstance(obj, float):
        return repr(obj)
    raise CodecError(f"not a number: {type(obj).__name__}")


def encode_number(enc: cbor.Encoder, text: str) -> None:
    """Integers as CBOR ints (bignums beyond 64 bits), anything else as a tag-4 decimal fraction.

    This mirrors the client's own encoder, so the client decodes the digits DynamoDB returned.
    """
    if not _has_fraction_or_exponent(text):
        try:
            enc.int(int(text))
            return
        except ValueError as exc:
            raise CodecError(f"bad number {text!r}") from exc
    try:
        d = DYNAMODB_CONTEXT.create_decimal(text)
    except decimal.DecimalException as exc:
        raise CodecError(f"bad number {text!r}") from exc
    exponent, mantissa = _crack_decimal(d)
    enc.tag(cbor.TAG_DECIMAL).array(2).int(exponent).int(mantissa)


def _crack_decimal(d: Decimal) -> tuple[int, int]:
    """(exponent, mantissa) computed from ``str(d)`` exactly as the client computes it."""
    text = str(d)
    base_exp = 0
    if "E" in text:
        text, exp_text = text.split("E")
        base_exp = int(exp_text)
    if "." in text:
        whole, fraction = text.split(".")
        return base_exp - len(fraction), int(whole + fraction)
    digits = text.rstrip("0")
    if digits in ("", "-"):
        digits += "0"
    return base_exp + len(text) - len(digits), int(digits)


def canonical_number(text: str) -> str:
    """DynamoDB's spelling of a stored number: no exponent, no trailing zeros, ``0`` for zero."""
    try:
        d = Decimal(text)
    except decimal.DecimalException as exc:
        raise CodecError(f"bad number {text!r}") from exc
    if d == 0:
        return "0"
    return format(d.normalize(_EXACT), "f")


def number_key(text: str) -> str:
    """A spelling shared by every representation of the same number (``80`` = ``8E+1`` = ``80.0``)."""
    return canonical_number(text)


# ---------------------------------------------------------------------------------------------
# LexDecimal: an order-preserving encoding of decimals, used for numeric range keys.


def lex_encode(value: Decimal | str) -> bytes:
    d = value if isinstance(value, Decimal) else DYNAMODB_CONTEXT.create_decimal(value)
    if d.is_zero():
        return b"\x80"
    sign, digits, exp = d.as_tuple()
    precision = len(digits)
    e = precision + exp  # value = 0.d1d2...dp x 10^e
    out = bytearray()
    if not sign:
        if -0x3E <= e < 0x3E:
            out.append(e + 0xC0)
        else:
            out.append(0x81 if e < 0 else 0xFE)
            out += ((e & 0xFFFFFFFF) ^ 0x80000000).to_bytes(4, "big")
    else:
        if -0x3E <= e < 0x3E:
            out.append(0x3F - e)
        else:
            out.append(0x7E if e < 0 else 0x01)
            out += ((e & 0xFFFFFFFF) ^ 0x7FFFFFFF).to_bytes(4, "big")
    text = "".join(map(str, digits))
    terminator = {1: 0, 2: 1, 0: 2}[len(text) % 3]
    text += "0" * (-len(text) % 3)
    groups = [int(text[i:i + 3]) for i in range(0, len(text), 3)]
    if sign:
        tens = [1011 - g for g in groups] + [1023 - terminator]
    else:
        tens = [g + 12 for g in groups] + [terminator]
    accum = bits = 0
    for ten in tens:
        accum = (accum << 10) | ten
        bits += 10
        while bits >= 8:
            bits -= 8
            out.append((accum >> bits) & 0xFF)
    if bits:
        out.append((accum << (8 - bits)) & 0xFF)
    return bytes(out)


def lex_decode(data: bytes) -> Decimal:
    """Decode one LexDecimal that fills ``data`` (trailing pad bits aside)."""
    if not data:
        raise CodecError("empty LexDecimal")
    header = data[0]
    if header in (0x80, 0x7F):
        return Decimal(0)
    pos = 1
    if header in (0x01, 0x7E):
        negative = True
        e = _read_u32(data, 1) ^ 0x7FFFFFFF
        pos = 5
    elif header in (0x81, 0xFE):
        negative = False
        e = _read_u32(data, 1) ^ 0x80000000
        pos = 5
    elif header >= 0x82:
        negative, e = False, header - 0xC0
    elif header >= 0x02:
        negative, e = True, 0x3F - header
    else:
        raise CodecError(f"bad LexDecimal header {header:#x}")
    if pos == 5 and e >= 1 << 31:
        e -= 1 << 32
    digits = ""
    accum = bits = 0
    for byte in data[pos:]:
        accum = (accum << 8) | byte
        bits += 8
        while bits >= 10:
            bits -= 10
            ten = (accum >> bits) & 0x3FF
            accum &= (1 << bits) - 1
            t = 1023 - ten if negative else ten
            if t <= 2:
                if not digits:
                    raise CodecError("LexDecimal without digits")
                digits = digits[:-3] + digits[-3:][: t + 1]
                value = Decimal((1 if negative else 0, tuple(int(c) for c in digits), e - len(digits)))
                return value
            group = 1011 - ten if negative else ten - 12
            if not 0 <= group <= 999:
                raise CodecError("bad LexDecimal digit group")
            digits += f"{group:03d}"
    raise CodecError("LexDecimal without terminator")


def _read_u32(data: bytes, pos: int) -> int:
    if len(data) < pos + 4:
        raise CodecError("truncated LexDecimal exponent")
    return int.from_bytes(data[pos:pos + 4], "big")


# ---------------------------------------------------------------------------------------------
# Attribute values


def av_from_cbor(obj: Any) -> dict:
    """Turn a decoded CBOR value into an AV.

    This is the client's encoding: docs/dax-protocol.md §Attribute values and numbers.
    """
    if obj is None:
        return {"NULL": True}
    if obj is True or obj is False:
        return {"BOOL": obj}
    if isinstance(obj, str):
        return {"S": obj}
    if isinstance(obj, bytes):
        return {"B": obj}
    if isinstance(obj, (int, float)):
        return {"N": number_from_cbor(obj)}
    if isinstance(obj, list):
        return {"L": [av_from_cbor(v) for v in obj]}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CodecError("map attribute names must be text")
            out[k] = av_from_cbor(v)
        return {"M": out}
    if isinstance(obj, Tag):
        if obj.tag == cbor.TAG_DECIMAL:
            return {"N": number_from_cbor(obj)}
        if not isinstance(obj.value, list):
            raise CodecError(f"tag {obj.tag} payload must be an array")
        if obj.tag == cbor.TAG_STRING_SET:
            if not all(isinstance(v, str) for v in obj.value):
                raise CodecError("string set holds a non-string")
            return {"SS": list(obj.value)}
        if obj.tag == cbor.TAG_NUMBER_SET:
            return {"NS": [number_from_cbor(v) for v in obj.value]}
        if obj.tag == cbor.TAG_BINARY_SET:
            if not all(isinstance(v, bytes) for v in obj.value):
                raise CodecError("binary set holds a non-binary")
            return {"BS": list(obj.value)}
    raise CodecError(f"cannot map {obj!r} to an attribute value")


def encode_av(enc: cbor.Encoder, av: dict) -> None:
    if len(av) != 1:
        raise CodecError(f"attribute value must have exactly one type: {list(av)}")
    (t, v), = av.items()
    if t == "S":
        enc.text(v)
    elif t == "N":
        encode_number(enc, v)
    elif t == "B":
        enc.bytes(v)
    elif t == "BOOL":
        enc.bool(v)
    elif t == "NULL":
        enc.null()
    elif t == "L":
        enc.array(len(v))
        for item in v:
            encode_av(enc, item)
    elif t == "M":
        enc.map(len(v))
        for name in sorted(v):
            enc.text(name)
            encode_av(enc, v[name])
    elif t == "SS":
        enc.tag(cbor.TAG_STRING_SET).array(len(v))
        for s in v:
            enc.text(s)
    elif t == "NS":
        enc.tag(cbor.TAG_NUMBER_SET).array(len(v))
        for n in v:
            encode_number(enc, n)
    elif t == "BS":
        enc.tag(cbor.TAG_BINARY_SET).array(len(v))
        for b in v:
            enc.bytes(b)
    else:
        raise CodecError(f"unknown attribute value type {t!r}")


def av_bytes(av: dict) -> bytes:
    enc = cbor.Encoder()
    encode_av(enc, av)
    return bytes(enc)


def canonical_av(av: dict) -> dict:
    """The AV as DynamoDB stores it (numbers respelled), so cached items read like DynamoDB's."""
    (t, v), = av.items()
    if t == "N":
        return {"N": canonical_number(v)}
    if t == "NS":
        return {"NS": [canonical_number(n) for n in v]}
    if t == "L":
        return {"L": [canonical_av(x) for x in v]}
    if t == "M":
        return {"M": {k: canonical_av(x) for k, x in v.items()}}
    return av


def canonical_item(item: dict) -> dict:
    return {name: canonical_av(av) for name, av in item.items()}


# ---------------------------------------------------------------------------------------------
# Keys


def decode_key(data: bytes, schema: KeySchema) -> dict:
    """Positional key bytes (docs/dax-protocol.md §Key bytes and LexDecimal) to ``{name: AV}``."""
    if not isinstance(data, bytes):
        raise CodecError("key must be a byte string")
    (hash_name, hash_type), *rest = schema
    if not rest:
        if hash_type == "S":
            return {hash_name: {"S": _utf8(data)}}
        if hash_type == "B":
            return {hash_name: {"B": data}}
        return {hash_name: {"N": number_from_cbor(cbor.loads(data))}}
    (range_name, range_type), = rest
    reader = cbor.BytesReader(data)
    try:
        hash_obj = cbor.Decoder(reader.read).decode()
    except cbor.CborError as exc:
        raise CodecError(f"bad key bytes: {exc}") from exc
    hash_av = _typed(hash_obj, hash_type)
    tail = reader.rest()
    if range_type == "S":
        range_av = {"S": _utf8(tail)}
    elif range_type == "B":
        range_av = {"B": tail}
    else:
        range_av = {"N": str(lex_decode(tail))}
    return {hash_name: hash_av, range_name: range_av}


def encode_key(key: dict, schema: KeySchema) -> bytes:
    enc = cbor.Encoder()
    (hash_name, hash_type), *rest = schema
    hash_av = _key_part(key, hash_name, hash_type)
    if not rest:
        if hash_type == "S":
            return hash_av["S"].encode("utf-8")
        if hash_type == "B":
            return bytes(hash_av["B"])
        encode_number(enc, hash_av["N"])
        return bytes(enc)
    (range_name, range_type), = rest
    encode_av(enc, hash_av)
    range_av = _key_part(key, range_name, range_type)
    if range_type == "S":
        enc.raw(range_av["S"].encode("utf-8"))
    elif range_type == "B":
        enc.raw(bytes(range_av["B"]))
    else:
        enc.raw(lex_encode(range_av["N"]))
    return bytes(enc)


def key_of(item: dict, schema: KeySchema) -> dict:
    return {name: item[name] for name, _ in schema}


def cache_key(key: dict, schema: KeySchema) -> tuple:
    """A hashable identity of a primary key; numerically equal numbers give equal identities."""
    parts = []
    for name, typ in schema:
        value = key[name][typ]
        parts.append(number_key(value) if typ == "N" else value)
    return tuple(parts)


def decode_compound_key(data: bytes) -> dict:
    obj = cbor.loads(data)
    if not isinstance(obj, dict):
        raise CodecError("compound key must be a map")
    return {name: av_from_cbor(v) for name, v in obj.items()}


def encode_compound_key(key: dict) -> bytes:
    enc = cbor.Encoder()
    enc.map(len(key))
    for name in sorted(key):
        enc.text(name)
        encode_av(enc, key[name])
    return bytes(enc)


def _key_part(key: dict, name: str, typ: str) -> dict:
    av = key.get(name)
    if not av or typ not in av:
        raise CodecError(f"key attribute {name!r} missing or not of type {typ}")
    return av


def _typed(obj: Any, typ: str) -> dict:
    if typ == "S" and isinstance(obj, str):
        return {"S": obj}
    if typ == "B" and isinstance(obj, bytes):
        return {"B": obj}
    if typ == "N":
        return {"N": number_from_cbor(obj)}
    raise CodecError(f"key part does not match type {typ}")


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError("key is not valid UTF-8") from exc


# ---------------------------------------------------------------------------------------------
# Values blobs: an attribute list id followed by the non-key values in that list's order.


def decode_values(data: bytes) -> tuple[int, list[dict]]:
    if not isinstance(data, bytes):
        raise CodecError("values must be a byte string")
    try:
        items = cbor.loads_sequence(data)
    except cbor.CborError as exc:
        raise CodecError(f"bad values blob: {exc}") from exc
    if not items or not isinstance(items[0], int) or isinstance(items[0], bool):
        raise CodecError("values blob must start with an attribute list id")
    return items[0], [av_from_cbor(v) for v in items[1:]]


def encode_values(list_id: int, values: Iterable[dict]) -> bytes:
    enc = cbor.Encoder().int(list_id)
    for av in values:
        encode_av(enc, av)
    return bytes(enc)
