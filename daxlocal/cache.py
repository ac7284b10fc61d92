"""The node's two caches: LRU bounded by (estimated) bytes, with a TTL, on an injectable clock.

DAX's rules, as the AWS developer guide states them (docs/dax-protocol.md §Caches):

* item cache: entries are full items or *negative* entries (the item does not exist); TTL
  ``record-ttl-millis`` where 0 means "never expires, only LRU and write-through replace it";
* query cache: whole Query/Scan result sets keyed by every request parameter; TTL
  ``query-ttl-millis`` where 0 means "do not cache";
* both keep an LRU list, updated on reads and writes; a full cache evicts the least recently used
  entries even if they have not expired.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

Clock = Callable[[], float]


class _Negative:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEGATIVE"


#: Stored in the item cache for "this item does not exist".
NEGATIVE = _Negative()
_MISS = object()


@dataclass
class _Entry:
    value: Any
    size: int
    expires: float | None
    stamp: int


class LruTtlCache:
    """Thread-safe LRU cache bounded by the sum of entry sizes, with optional TTL.

    Every store gets a stamp from a cache-wide counter. A reader that fetched a value from DynamoDB
    passes the stamp it saw before fetching (``fill(..., since=stamp)``), so a slow fill never
    overwrites a newer write-through that happened while it was in flight.
    """

    def __init__(self, *, max_bytes: int, ttl_seconds: float, clock: Clock = time.monotonic,
                 ttl_zero_means_no_expiry: bool = True) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl_seconds
        self.clock = clock
        self.enabled = ttl_seconds > 0 or ttl_zero_means_no_expiry
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._stamp = 0
        self._lock = threading.Lock()
        self.evicted_bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def stamp(self) -> int:
        """The current write counter, to pass as ``since`` to a later :meth:`fill`."""
        with self._lock:
            return self._stamp

    def get(self, key: Hashable, default: Any = _MISS) -> Any:
        """The live value (possibly :data:`NEGATIVE`) or ``default``; refreshes the entry's LRU position."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            if entry.expires is not None and self.clock() >= entry.expires:
                self._remove(key)
                return default
            self._entries.move_to_end(key)
            return entry.value

    def put(self, key: Hashable, value: Any, size: int) -> None:
        """Unconditional store (write-through)."""
        with self._lock:
            self._store(key, value, size)

    def fill(self, key: Hashable, value: Any, size: int, *, since: int) -> bool:
        """Store unless the key was written after stamp ``since``. Returns whether it stored."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.stamp > since:
                return False
            self._store(key, value, size)
            return True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _store(self, key: Hashable, value: Any, size: int) -> None:
        if not self.enabled:
            return
        self._stamp += 1
        if key in self._entries:
            self._remove(key)
        expires = self.clock() + self.ttl if self.ttl > 0 else None
        self._entries[key] = _Entry(value, size, expires, self._stamp)
        self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self.evicted_bytes += self._entries[oldest].size
            self._remove(oldest)

    def _remove(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size


def estimate_size(obj: Any) -> int:
    """A rough byte count of an item / result, good enough to bound memory."""
    if isinstance(obj, dict):
        return 8 + sum(estimate_size(k) + estimate_size(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return 8 + sum(estimate_size(v) for v in obj)
    if isinstance(obj, (str, bytes)):
        return len(obj) + 1
    return 8
