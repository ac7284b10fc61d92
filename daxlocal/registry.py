"""The attribute-list registry: ids for the sorted non-key attribute names of items on the wire.

Clients cache id -> names and names -> id for their whole life, so an id must never come to mean a
different list, not even after the node restarts (docs/dax-protocol.md §Attribute lists and values
blobs). Two measures:

* **Ids are derived from the list's content** (62 bits of SHA-256 over the names), so every node
  process, old or new, gives the same list the same id and a different list a different id. A
  restarted node can therefore never hand an old id a new meaning; the worst case for a client
  holding ids from an earlier run is an "unknown attribute list id" error, never a silent
  re-labelling of its data.
* **Optional persistence** (``--registry-file``): an append-only JSON-lines file of the lists seen,
  reloaded at start, so a restarted node also *knows* the ids clients still hold and their writes
  keep working.

Id 1 is reserved for the empty list on both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

EMPTY_LIST_ID = 1


class RegistryError(ValueError):
    """Unknown id, or a values blob whose length does not match its list."""


def list_id(names: tuple[str, ...]) -> int:
    if not names:
        return EMPTY_LIST_ID
    digest = hashlib.sha256(json.dumps(list(names)).encode("utf-8")).digest()
    # 63-bit ints with bit 1 set (62 bits of hash): plain CBOR ints that can never be 0 or the reserved 1.
    return (int.from_bytes(digest[:8], "big") >> 1) | 2


class AttributeListRegistry:
    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[str, ...]] = {EMPTY_LIST_ID: ()}
        self._path = Path(path) if path else None
        # In a cluster: the lists every node has defined (a client caches an id it got from one
        # node and sends it to another), with save(ident, names) and load(ident) -> names | None.
        self.shared = None
        if self._path is not None:
            self._load()

    def __len__(self) -> int:
        return len(self._by_id) - 1

    def id_for(self, names) -> int:
        """The id of a list of attribute names (they must already be sorted and distinct)."""
        names = tuple(names)
        if list(names) != sorted(set(names)):
            raise RegistryError("attribute names must be sorted and distinct")
        if not all(isinstance(n, str) for n in names):
            raise RegistryError("attribute names must be text")
        ident = list_id(names)
        with self._lock:
            known = self._by_id.get(ident)
        if known is None and self.shared is not None:
            self.shared.save(ident, names)  # before the id is handed out, like the file's fsync
        with self._lock:
            known = self._by_id.get(ident)
            if known is None:
                self._by_id[ident] = names
                self._persist(names)
            elif known != names:  # a 63-bit collision: refuse rather than alias
                raise RegistryError(f"attribute list id collision between {known} and {names}")
        return ident

    def names_for(self, ident: int) -> tuple[str, ...]:
        with self._lock:
            names = self._by_id.get(ident)
        if names is None and self.shared is not None:
            found = self.shared.load(ident)
            if found is not None and list_id(tuple(found)) == ident:
                names = tuple(found)
                with self._lock:
                    self._by_id[ident] = names
        if names is None:
            raise RegistryError(f"unknown attribute list id {ident}")
        return names

    def item_from_values(self, ident: int, values: list[dict]) -> dict:
        names = self.names_for(ident)
        if len(names) != len(values):
            raise RegistryError(
                f"attribute list {ident} has {len(names)} names but the item carries {len(values)} values"
            )
        return dict(zip(names, values))

    def _load(self) -> None:
        assert self._path is not None
        if not self._path.exists():
            return
        with self._path.open("rb+") as fh:
            # Terminate a line torn by a crash so the next append starts cleanly.
            fh.seek(0, os.SEEK_END)
            if fh.tell():
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
        with self._path.open(encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    names = tuple(json.loads(line))
                except ValueError:
                    continue  # a torn last line from a crash; the list is re-registered on demand
                self._by_id[list_id(names)] = names

    def _persist(self, names: tuple[str, ...]) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(list(names)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
