"""A strict, streaming CBOR (RFC 8949) reader and a small writer, for the DAX wire protocol.

The reader pulls bytes from any ``read(n)`` callable, so the same code parses a live socket (where a
request has no length prefix and ends where its last CBOR item ends) and the CBOR nested inside byte
strings (keys, values blobs, compiled expressions). Limits on nesting and lengths make a hostile or
corrupt frame fail fast instead of exhausting memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

# Tags with meaning in the protocol (RFC 8949 plus DynamoDB's private range).
TAG_POS_BIGNUM = 2
TAG_NEG_BIGNUM = 3
TAG_DECIMAL = 4
TAG_STRING_SET = 3321
TAG_NUMBER_SET = 3322
TAG_BINARY_SET = 3323
TAG_DOCUMENT_PATH_ORDINAL = 3324

MAX_DEPTH = 200
MAX_LENGTH = 64 * 1024 * 1024


class CborError(ValueError):
    """The input is not valid CBOR (or exceeds the reader's limits)."""


class Truncated(CborError):
    """The input ended in the middle of an item."""


@dataclass(frozen=True)
class Tag:
    tag: int
    value: Any


class _Break:
    __slots__ = ()

    def __repr__(self) -> str:
        return "BREAK"


BREAK = _Break()


class BytesReader:
    """``read(n)`` over an in-memory buffer; knows when the buffer is exhausted."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise Truncated(f"need {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def rest(self) -> bytes:
        chunk = self.data[self.pos:]
        self.pos = len(self.data)
        return chunk


class Decoder:
    """Decodes one CBOR item per ``decode()`` call.

    Maps become dicts (a repeated key keeps the last value, which is what the protocol relies on for
    the duplicated ConditionExpression kwarg), arrays become lists, bignums become ints, other tags
    become :class:`Tag`, floats become float, null and undefined become None.
    """

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read

    def decode(self) -> Any:
        item = self._item(0)
        if item is BREAK:
            raise CborError("unexpected break")
        return item

    def _head(self) -> tuple[int, int, int | None]:
        initial = self._read(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info == 24:
            return major, info, self._read(1)[0]
        if info == 25:
            return major, info, struct.unpack(">H", self._read(2))[0]
        if info == 26:
            return major, info, struct.unpack(">I", self._read(4))[0]
        if info == 27:
            return major, info, struct.unpack(">Q", self._read(8))[0]
        if info == 31:
            return major, info, None
        raise CborError(f"reserved additional info {info}")

    def _item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CborError("nesting too deep")
        major, info, arg = self._head()
        if major == 0:
            self._definite(arg)
            return arg
        if major == 1:
            self._definite(arg)
            return -1 - arg
        if major in (2, 3):
            data = self._string(major, arg, depth)
            if major == 3:
                try:
                    return data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise CborError("invalid UTF-8 in text string") from exc
            return data
        if major == 4:
            if arg is None:
                items = []
                while (item := self._item(depth + 1)) is not BREAK:
                    items.append(item)
                return items
            self._check_length(arg)
            return [self._required(depth + 1) for _ in range(arg)]
        if major == 5:
            result: dict = {}
            if arg is None:
                while (key := self._item(depth + 1)) is not BREAK:
                    result[_hashable(key)] = self._required(depth + 1)
                return result
            self._check_length(arg)
            for _ in range(arg):
                key = self._required(depth + 1)
                result[_hashable(key)] = self._required(depth + 1)
            return result
        if major == 6:
            self._definite(arg)
            value = self._required(depth + 1)
            if arg in (TAG_POS_BIGNUM, TAG_NEG_BIGNUM):
                if not isinstance(value, bytes):
                    raise CborError("bignum payload must be a byte string")
                n = int.from_bytes(value, "big")
                return n if arg == TAG_POS_BIGNUM else -1 - n
            return Tag(arg, value)
        # major 7: simple values and floats
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return struct.unpack(">e", arg.to_bytes(2, "big"))[0]
        if info == 26:
            return struct.unpack(">f", arg.to_bytes(4, "big"))[0]
        if info == 27:
            return struct.unpack(">d", arg.to_bytes(8, "big"))[0]
        if info == 31:
            return BREAK
        raise CborError(f"unsupported simple value {info}")

    def _required(self, depth: int) -> Any:
        item = self._item(depth)
        if item is BREAK:
            raise CborError("unexpected break")
        return item

    def _string(self, major: int, arg: int | None, depth: int) -> bytes:
        if arg is not None:
            self._check_length(arg)
            return self._read(arg)
        chunks = []
        total = 0
        while True:
            chunk_major, _, chunk_arg = self._head()
            if chunk_major == 7 and chunk_arg is None:
                return b"".join(chunks)
            if chunk_major != major or chunk_arg is None:
                raise CborError("bad chunk in indefinite-length string")
            total += chunk_arg
            self._check_length(total)
            chunks.append(self._read(chunk_arg))

    @staticmethod
    def _definite(arg: int | None) -> None:
        if arg is None:
            raise CborError("indefinite length not allowed here")

    @staticmethod
    def _check_length(n: int) -> None:
        if n > MAX_LENGTH:
            raise CborError(f"length {n} exceeds limit")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        raise CborError("map used as a map key")
    return key


def loads(data: bytes) -> Any:
    """Decode exactly one item that must fill ``data``."""
    reader = BytesReader(data)
    item = Decoder(reader.read).decode()
    if not reader.at_end():
        raise CborError("trailing bytes after CBOR item")
    return item


def loads_sequence(data: bytes) -> list:
    """Decode a concatenation of items (no surrounding array) that fills ``data``."""
    reader = BytesReader(data)
    decoder = Decoder(reader.read)
    items = []
    while not reader.at_end():
        items.append(decoder.decode())
    return items


class Encoder:
    """Appends CBOR items to a buffer; ``bytes(enc)`` gives the encoding so far."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def __bytes__(self) -> bytes:
        return bytes(self.buf)

    def head(self, major: int, n: int) -> Encoder:
        mt = major << 5
        if n < 24:
            self.buf.append(mt | n)
        elif n <= 0xFF:
            self.buf += bytes((mt | 24, n))
        elif n <= 0xFFFF:
            self.buf.append(mt | 25)
            self.buf += struct.pack(">H", n)
        elif n <= 0xFFFFFFFF:
            self.buf.append(mt | 26)
            self.buf += struct.pack(">I", n)
        else:
            self.buf.append(mt | 27)
            self.buf += struct.pack(">Q", n)
        return self

    def int(self, n: int) -> Encoder:
        if n >= 0:
            if n < 1 << 64:
                return self.head(0, n)
            return self.tag(TAG_POS_BIGNUM).bytes(_int_bytes(n))
        if n >= -(1 << 64):
            return self.head(1, -1 - n)
        return self.tag(TAG_NEG_BIGNUM).bytes(_int_bytes(-1 - n))

    def float(self, f: float) -> Encoder:
        self.buf.append(0xFB)
        self.buf += struct.pack(">d", f)
        return self

    def text(self, s: str) -> Encoder:
        data = s.encode("utf-8")
        self.head(3, len(data))
        self.buf += data
        return self

    def bytes(self, b: bytes) -> Encoder:
        self.head(2, len(b))
        self.buf += b
        return self

    def array(self, n: int) -> Encoder:
        return self.head(4, n)

    def map(self, n: int) -> Encoder:
        return self.head(5, n)

    def tag(self, t: int) -> Encoder:
        return self.head(6, t)

    def null(self) -> Encoder:
        self.buf.append(0xF6)
        return self

    def bool(self, b: bool) -> Encoder:
        self.buf.append(0xF5 if b else 0xF4)
        return self

    def raw(self, data: bytes) -> Encoder:
        self.buf += data
        return self

    def value(self, obj: Any) -> Encoder:
        """Encode a plain Python value (None, bool, int, float, str, bytes, list, dict, Tag)."""
        if obj is None:
            return self.null()
        if obj is True or obj is False:
            return self.bool(obj)
        if isinstance(obj, int):
            return self.int(obj)
        if isinstance(obj, float):
            return self.float(obj)
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return self.bytes(bytes(obj))
        if isinstance(obj, (list, tuple)):
            self.array(len(obj))
            for item in obj:
                self.value(item)
            return self
        if isinstance(obj, dict):
            self.map(len(obj))
            for key, item in obj.items():
                self.value(key)
                self.value(item)
            return self
        if isinstance(obj, Tag):
            return self.tag(obj.tag).value(obj.value)
        raise TypeError(f"cannot CBOR-encode {type(obj).__name__}")


def _int_bytes(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def dumps(obj: Any) -> bytes:
    return bytes(Encoder().value(obj))
