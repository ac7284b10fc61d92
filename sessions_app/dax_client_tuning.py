"""Faster reply decoding for the pinned DAX client (``amazon-dax-client`` 2.1.0), on by the
``DAX_CLIENT_TUNING`` setting; :mod:`sessions_app.dynamo` applies it when it builds the client.

The client decodes every item of a reply with its pure-Python CBOR decoder, byte by byte
(~1.5 ms of a context load's CPU). An item arrives as one CBOR byte string holding the item's
attribute-list id followed by its attribute values, concatenated; this module hands that blob to
``cbor2``'s C decoder instead (one call per item) and maps the values to AttributeValue dicts
exactly as ``AttributeValueDecoder._decode_attribute_value`` does, with the client's own tag
handling: DynamoDB decimals (tag 4) through the client's ``DYNAMODB_CONTEXT``, its string,
number and binary sets (tags 3321–3323). It also builds the client's nested decoders with a
shared tag table instead of copying it per item. Nothing else changes: requests, expressions,
routing, errors, the item and query caches are the client's own.

Expression caching (the client builds a fresh ANTLR parser per expression) is not done here:
the hot reads send no expressions at all (hand-built GetItem and BatchGetItem requests,
docs/architecture.md §Read path).

Only for the exact client version it was written against: on any other version :func:`apply`
logs a warning and leaves the client stock. tests/test_dax_client_tuning.py runs the client's
operations against a DAX node with the tuning on and off and compares the results.
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata

log = logging.getLogger(__name__)

CLIENT_DISTRIBUTION = "amazon-dax-client"
CLIENT_VERSION = "2.1.0"

_lock = threading.Lock()
_originals: dict[str, object] = {}  # what was patched, to restore


def client_version() -> str | None:
    """The installed client's version (the module's own and the distribution's must agree)."""
    try:
        import amazondax

        module_version = getattr(amazondax, "__version__", None)
        dist_version = metadata.version(CLIENT_DISTRIBUTION)
    except (ImportError, metadata.PackageNotFoundError):
        return None
    return module_version if module_version == dist_version else f"{module_version} / {dist_version}"


def active() -> bool:
    return bool(_originals)


def apply(enabled: bool) -> bool:
    """Switch the tuning on or off (idempotent); returns whether it is on afterwards."""
    with _lock:
        if not enabled:
            _restore()
            return False
        if _originals:
            return True
        version = client_version()
        if version != CLIENT_VERSION:
            log.warning("DAX client tuning is off: written for %s %s, found %s",
                        CLIENT_DISTRIBUTION, CLIENT_VERSION, version)
            return False
        try:
            import cbor2  # noqa: F401
        except ImportError:
            log.warning("DAX client tuning is off: cbor2 is not installed")
            return False
        _patch()
        return True


def _patch() -> None:
    from amazondax import AttributeValueDecoder, DaxCborDecoder

    _originals["AttributeValueDecoder._decode_stream_item"] = AttributeValueDecoder._decode_stream_item
    _originals["DaxCborDecoder.DaxCborDecoder.__init__"] = DaxCborDecoder.DaxCborDecoder.__init__
    AttributeValueDecoder._decode_stream_item = _decode_stream_item
    DaxCborDecoder.DaxCborDecoder.__init__ = _dax_decoder_init


def _restore() -> None:
    from amazondax import AttributeValueDecoder, DaxCborDecoder

    if "AttributeValueDecoder._decode_stream_item" in _originals:
        AttributeValueDecoder._decode_stream_item = _originals["AttributeValueDecoder._decode_stream_item"]
        DaxCborDecoder.DaxCborDecoder.__init__ = _originals["DaxCborDecoder.DaxCborDecoder.__init__"]
    _originals.clear()


# --- the replacements (written against amazondax 2.1.0's CborDecoder / AttributeValueDecoder) ---

_shared_tags: dict | None = None


def _dax_decoder_init(self, more) -> None:
    """``DaxCborDecoder.__init__`` without copying the tag table per decoder (nothing mutates
    it: the decoder only looks handlers up)."""
    global _shared_tags
    if _shared_tags is None:
        from amazondax.CborDecoder import _DEFAULT_TAG_HANDLERS
        from amazondax.DaxCborDecoder import DAX_TAG_HANDLERS

        _shared_tags = {**_DEFAULT_TAG_HANDLERS, **DAX_TAG_HANDLERS}
    self.more = more
    self.buffer = bytearray()
    self.tag_handlers = _shared_tags


def _decimal(value, immutable=False):
    """Tag 4 as the client decodes it (CborDecoder._decode_decimal): [exponent, mantissa]."""
    from amazondax.CborEncoder import DYNAMODB_CONTEXT
    from amazondax.DaxError import DaxClientError, DaxErrorCode

    if not isinstance(value, list) or len(value) != 2:
        raise DaxClientError("Decimal value has wrong array size", DaxErrorCode.Decoder)
    exponent, mantissa = value
    sign = 0 if mantissa >= 0 else 1
    return DYNAMODB_CONTEXT.create_decimal((sign, tuple(map(int, str(abs(mantissa)))), exponent))


def _set(kind: str, convert):
    def decode(value, immutable=False):
        from amazondax.DaxCborTypes import DdbSet
        from amazondax.DaxError import DaxClientError, DaxErrorCode

        if not isinstance(value, list):
            raise DaxClientError("Type for Set is not array", DaxErrorCode.Decoder)
        return DdbSet(kind, [convert(v) for v in value])
    return decode


def _semantic_decoders() -> dict:
    from amazondax.DaxCborTypes import TAG_DDB_BINARY_SET, TAG_DDB_NUMBER_SET, TAG_DDB_STRING_SET

    return {4: _decimal, TAG_DDB_STRING_SET: _set("SS", str), TAG_DDB_NUMBER_SET: _set("NS", str),
            TAG_DDB_BINARY_SET: _set("BS", bytes)}


_SEMANTIC: dict | None = None


def _attribute_value(v):
    """``AttributeValueDecoder._decode_attribute_value`` for an already decoded value."""
    t = type(v)
    if t is str:
        return {"S": v}
    if t is bytes:
        return {"B": v}
    if t is list:
        return {"L": [_attribute_value(x) for x in v]}
    if t is dict:
        return {"M": {k: _attribute_value(x) for k, x in v.items()}}
    if v is None:
        return {"NULL": True}
    if t is bool:
        return {"BOOL": v}
    from amazondax.DaxCborTypes import DdbSet

    if isinstance(v, DdbSet):
        return {v.type: v.values}
    from amazondax.AttributeValueDecoder import NUMBER_TYPES

    if isinstance(v, NUMBER_TYPES):
        return {"N": str(v)}
    import cbor2

    if v is cbor2.undefined:
        return {"NULL": True}
    from amazondax.DaxError import DaxClientError, DaxErrorCode

    raise DaxClientError("Unknown type", DaxErrorCode.MalformedResult)


def _decode_stream_item(dec):
    """``AttributeValueDecoder._decode_stream_item`` by cbor2: the nested record holds the
    attribute-list id and the attribute values, concatenated — decoded as one indefinite array."""
    global _SEMANTIC
    import cbor2

    from amazondax.DaxError import DaxClientError, DaxErrorCode

    if _SEMANTIC is None:
        _SEMANTIC = _semantic_decoders()
    data = dec.drain()
    try:
        values = cbor2.loads(b"\x9f" + data + b"\xff", semantic_decoders=_SEMANTIC)
    except cbor2.CBORDecodeError as exc:
        raise DaxClientError(f"Malformed item: {exc}", DaxErrorCode.Decoder) from exc
    if not values or type(values[0]) is not int:
        raise DaxClientError("Item record has no attribute list id", DaxErrorCode.MalformedResult)
    return {
        "_attr_list_id": values[0],
        "_anonymous_attribute_values": [_attribute_value(v) for v in values[1:]],
    }
