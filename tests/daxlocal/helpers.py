"""Plain helpers for the DAX node tests: item builders, response normalisation, a raw protocol connection."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from decimal import Decimal

from botocore.exceptions import ClientError

from daxlocal import cbor


@dataclass(frozen=True)
class Table:
    name: str
    hash: tuple[str, str]
    range: tuple[str, str] | None = None
    indexed: bool = False

    @property
    def id(self) -> str:
        return self.hash[1] + (self.range[1] if self.range else "")

    def key(self, part: str, sort: int = 0) -> dict:
        """Item ``sort`` of group ``part``: one partition with a sort key, or one partition per item."""
        if not self.range:
            return {self.hash[0]: _typed(self.hash[1], f"{part}.{sort}")}
        return {self.hash[0]: _typed(self.hash[1], part), self.range[0]: _typed(self.range[1], f"{sort:04d}", sort)}

    def partition(self, part: str) -> dict:
        return {self.hash[0]: _typed(self.hash[1], part)}


def _typed(typ: str, text: str, number: int | None = None) -> dict:
    if typ == "S":
        return {"S": text}
    if typ == "B":
        return {"B": text.encode()}
    if number is None:  # a stable numeric partition per text
        number = int(uuid.uuid5(uuid.NAMESPACE_OID, text).int % 10**12)
    return {"N": str(Decimal(number) / 4 if number % 3 == 1 else number)}


class FakeClock:
    """A monotonic clock the tests move by hand (cache TTLs only; nothing sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


AV_TYPES = {"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"}


def rich_item(table: Table, part: str, sort: int = 0, **extra) -> dict:
    """An item using every attribute value type, with numbers DynamoDB will respell."""
    item = {
        **table.key(part, sort),
        "s": {"S": f"text ü {sort}"},
        "n": {"N": "12.50"},
        "big": {"N": "12345678901234567890123"},
        "neg": {"N": "-7"},
        "small": {"N": "0.000001"},
        "b": {"B": b"\x00\xff"},
        "t": {"BOOL": True},
        "nul": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"x", b"y"]},
        "l": {"L": [{"N": "1"}, {"M": {"x": {"S": "deep"}}}, {"L": []}]},
        "m": {"M": {"a": {"N": "1"}, "nested": {"M": {"k": {"S": "v"}}}, "empty": {"M": {}}}},
        "kind": {"S": f"{part}-k{sort % 2}"},
        "score": {"N": str(10 - sort)},
    }
    item.update(extra)
    return item


def norm(obj):
    """A response with numbers compared by value, sets by content, and no per-call metadata.

    The client spells a few numbers differently from DynamoDB (``1E-7`` for ``0.0000001``): that is
    the real client's decoding, not the node's, so values are compared as decimals.
    """
    if isinstance(obj, dict):
        if len(obj) == 1:
            (t, v), = obj.items()
            if t == "N" and isinstance(v, str):
                return {"N": Decimal(v).normalize()}
            if t == "NS" and isinstance(v, list):
                return {"NS": sorted(Decimal(x).normalize() for x in v)}
            if t in ("SS", "BS") and isinstance(v, list):
                return {t: sorted(v)}
        return {k: norm(v) for k, v in obj.items() if k != "ResponseMetadata"}
    if isinstance(obj, list):
        return [norm(v) for v in obj]
    return obj


def outcome(call, **kwargs):
    """("ok", normalised response) or ("error", error code) for a client call."""
    try:
        return "ok", norm(call(**kwargs))
    except ClientError as exc:
        return "error", exc.response["Error"]["Code"]


def pages(call, **kwargs) -> list:
    """Every page of a paginated Query/Scan, following LastEvaluatedKey."""
    out = []
    while True:
        response = call(**kwargs)
        out.append(norm(response))
        if "LastEvaluatedKey" not in response or len(out) > 50:
            return out
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def strip_capacity_units(obj):
    """ConsumedCapacity with the numbers removed (cache hits report 0 units)."""
    if isinstance(obj, dict):
        return {k: strip_capacity_units(v) for k, v in obj.items() if k != "CapacityUnits"}
    if isinstance(obj, list):
        return [strip_capacity_units(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------- raw protocol

HANDSHAKE = b"gJ7yne5G" + cbor.dumps(0) + cbor.dumps(None) + cbor.dumps({"UserAgent": "raw-test"}) + cbor.dumps(0)
ENDPOINTS = cbor.dumps(1) + cbor.dumps(455855874)


def request(method_id: int, *args) -> bytes:
    return cbor.dumps(1) + cbor.dumps(method_id) + b"".join(cbor.dumps(a) for a in args)


class Raw:
    """A hand-driven protocol connection."""

    def __init__(self, port: int, handshake: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        if handshake:
            self.sock.sendall(HANDSHAKE)

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise cbor.Truncated("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def call(self, data: bytes) -> list:
        """Send one request; return the reply's top-level items (header first)."""
        self.sock.sendall(data)
        decoder = cbor.Decoder(self._read)
        header = decoder.decode()
        if header == []:
            return [header, decoder.decode()]
        return [header, decoder.decode(), decoder.decode()]

    def is_closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()
