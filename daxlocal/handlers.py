"""The fifteen methods of the DAX protocol, written through to DynamoDB with DAX's cache semantics.

Each data handler takes the decoded positional arguments of one request and returns the reply
payload that follows the success header. Failures are raised as :class:`~.errors.DaxError`.

Cache rules (AWS developer guide; docs/dax-protocol.md §Caches):

* GetItem / BatchGetItem (eventually consistent) read the item cache; misses fetch the *full* item
  from DynamoDB and cache it (or a negative entry); projections are applied by the node.
* Query / Scan (eventually consistent) read the query cache, keyed by every request parameter
  except ReturnConsumedCapacity; writes never touch it, so it can be stale until its TTL.
* Put/Update/Delete/BatchWrite write through: DynamoDB first, then the item cache (Delete leaves a
  negative entry). TransactWriteItems refreshes the written items with TransactGetItems afterwards,
  synchronously or after ``tx_refresh_delay`` seconds (modelling DAX's background refresh).
* ConsistentRead=true and TransactGetItems go straight to DynamoDB and never touch a cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

from . import cbor, codec, expressions as ex
from .cache import NEGATIVE, LruTtlCache, estimate_size
from .errors import TABLE_NOT_FOUND, DaxError, validation
from .registry import AttributeListRegistry
from .stats import Stats

log = logging.getLogger(__name__)

_MISS = object()

RETURN_VALUES = {1: "NONE", 2: "ALL_OLD", 3: "UPDATED_OLD", 4: "ALL_NEW", 5: "UPDATED_NEW"}
RETURN_CC = {0: "NONE", 1: "TOTAL", 2: "INDEXES"}
SELECT = {1: "ALL_ATTRIBUTES", 2: "ALL_PROJECTED_ATTRIBUTES", 3: "COUNT", 4: "SPECIFIC_ATTRIBUTES"}

# kwarg ids (docs/dax-protocol.md §Request parameters)
K_PROJECTION, K_NAMES, K_CONSISTENT, K_RCC, K_CONDITION, K_VALUES, K_RICM, K_RETURN_VALUES = range(8)
K_UPDATE, K_START_KEY, K_FILTER, K_INDEX, K_LIMIT, K_FORWARD, K_SELECT = 8, 9, 10, 11, 13, 14, 15
K_SEGMENT, K_TOTAL_SEGMENTS, K_TOKEN = 16, 17, 19

# response ids (docs/dax-protocol.md §Reply fields)
R_ITEM, R_CC, R_ATTRIBUTES, R_ICM, R_ITEMS, R_COUNT, R_LEK, R_SCANNED = 0, 1, 2, 3, 7, 8, 9, 10

TX_PUT, TX_DELETE, TX_UPDATE, TX_CHECK = 2, 7, 9, 12
# A table's key schema cannot change while it exists (only by deleting and creating it again), so
# it is kept an hour. Kept for a minute, the refresh stalled a bench: DynamoDB Local answers
# DescribeTable by counting every index's items with its whole store locked — 23 s on a table of
# 2.2M items, during which every other request waited (docs/dax-protocol.md §Method ids, defineKeySchema).
SCHEMA_TTL_SECONDS = 3600.0
BATCH_RETRIES = 5
TRANSACT_GET_CHUNK = 25


@dataclass
class TableInfo:
    name: str
    schema: list  # [(name, type)], hash first
    indexes: dict = field(default_factory=dict)  # index name -> schema
    has_lsi: bool = False
    fetched_at: float = 0.0


class Operations:
    """Holds the node's shared state and implements every protocol method."""

    def __init__(self, *, dynamodb, registry: AttributeListRegistry, item_cache: LruTtlCache,
                 query_cache: LruTtlCache, stats: Stats, advertise: tuple[bytes, int],
                 tx_refresh_delay: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ddb = dynamodb
        self.registry = registry
        self.item_cache = item_cache
        self.query_cache = query_cache
        self.stats = stats
        self.advertise = advertise
        self.tx_refresh_delay = tx_refresh_delay
        self.clock = clock
        self._tables: dict[str, TableInfo] = {}
        self._tables_lock = threading.Lock()
        self._refreshers: set[threading.Timer] = set()
        # Set by a cluster's leader: told of every item-cache store a write caused, to replicate it.
        self.on_cache_write: Callable[[tuple, Any, int], None] | None = None
        # Repeated hits answer from the bytes encoded for the first one (docs/dax-protocol.md §Item cache).
        self.encoded = EncodedMemo(max_bytes=max(1 << 20, item_cache.max_bytes // 2))
        # Set in a cluster: the live membership for the endpoints reply (docs/dax-protocol.md §Cluster).
        self.cluster_endpoints: Callable[[], list] | None = None

    # ------------------------------------------------------------------ control methods

    def endpoints(self) -> bytes:
        if self.cluster_endpoints is not None:
            return cbor.dumps(self.cluster_endpoints())
        address, port = self.advertise
        node = {0: 1, 1: "localhost", 2: address, 3: port, 4: 1, 5: "local-1a", 6: 0}
        return cbor.dumps([node])

    def define_key_schema(self, table_name: Any) -> bytes:
        info = self.table(_text(table_name, "table name"))
        enc = cbor.Encoder().map(len(info.schema))
        for name, typ in info.schema:  # hash first: the client relies on the order
            enc.text(name).text(typ)
        return bytes(enc)

    def define_attribute_list(self, ident: Any) -> bytes:
        if not isinstance(ident, int) or isinstance(ident, bool):
            raise validation("attribute list id must be an integer")
        return cbor.dumps(list(self._names_for(ident)))

    def define_attribute_list_id(self, names: Any) -> bytes:
        if not isinstance(names, list):
            raise validation("attribute names must be an array")
        try:
            return cbor.dumps(self.registry.id_for(names))
        except ValueError as exc:
            raise validation(str(exc)) from exc

    # ------------------------------------------------------------------ single items

    def get_item(self, table_name: Any, key_bytes: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        info = self.table(_text(table_name, "table name"))
        key = self._decode_key(key_bytes, info)
        paths = self._projection(kw)
        rcc = _rcc(kw)
        if kw.get(K_CONSISTENT):
            ph = ex.Placeholders()
            request = {"TableName": info.name, "Key": key, "ConsistentRead": True}
            if paths:
                request["ProjectionExpression"] = ex.projection_for_dynamodb(paths, ph)
            ph.apply(request)
            response = self._call("get_item", request, rcc)
            item, cc = response.get("Item"), response.get("ConsumedCapacity")
        else:
            item, cc = self._cached_get(info, key, rcc)
        out = {}
        if item is not None:
            out[R_ITEM] = _raw(self._projection_map(item, paths) if paths else self._values_blob_cbor(item, info))
        _put_cc(out, cc, rcc)
        return _normal_reply(out)

    def put_item(self, table_name: Any, key_bytes: Any, values: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        info = self.table(_text(table_name, "table name"))
        key = self._decode_key(key_bytes, info)
        item = {**self._decode_values(values, info), **key}
        ph = ex.Placeholders()
        request: dict = {"TableName": info.name, "Item": item}
        self._add_condition(request, kw, ph)
        return_values = _return_values(kw)
        if return_values != "NONE":
            request["ReturnValues"] = return_values
        _add_ricm(request, kw)
        response = self._call("put_item", ph.apply(request), _rcc(kw))
        self._write_through(info, key, codec.canonical_item(item))
        return self._write_reply(info, response, kw, return_values)

    def update_item(self, table_name: Any, key_bytes: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        info = self.table(_text(table_name, "table name"))
        key = self._decode_key(key_bytes, info)
        ph = ex.Placeholders()
        request: dict = {"TableName": info.name, "Key": key}
        if K_UPDATE in kw:
            request["UpdateExpression"] = self._expression(ex.update_text, kw[K_UPDATE], ph, "u")
        self._add_condition(request, kw, ph)
        return_values = _return_values(kw)
        # ALL_NEW gives the new image for the cache in the same call; other modes need a re-read.
        request["ReturnValues"] = "ALL_NEW" if return_values in ("NONE", "ALL_NEW") else return_values
        _add_ricm(request, kw)
        response = self._call("update_item", ph.apply(request), _rcc(kw))
        if request["ReturnValues"] == "ALL_NEW":
            new_image = response.get("Attributes") or dict(key)
            if return_values == "NONE":
                response.pop("Attributes", None)
        else:
            new_image = self.ddb.get_item(TableName=info.name, Key=key, ConsistentRead=True).get("Item")
        self._write_through(info, key, new_image if new_image is not None else NEGATIVE)
        return self._write_reply(info, response, kw, return_values)

    def delete_item(self, table_name: Any, key_bytes: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        info = self.table(_text(table_name, "table name"))
        key = self._decode_key(key_bytes, info)
        ph = ex.Placeholders()
        request: dict = {"TableName": info.name, "Key": key}
        self._add_condition(request, kw, ph)
        return_values = _return_values(kw)
        if return_values != "NONE":
            request["ReturnValues"] = return_values
        _add_ricm(request, kw)
        response = self._call("delete_item", ph.apply(request), _rcc(kw))
        self._write_through(info, key, NEGATIVE)
        return self._write_reply(info, response, kw, return_values)

    # ------------------------------------------------------------------ query / scan

    def query(self, table_name: Any, key_condition: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        info = self.table(_text(table_name, "table name"))
        ph = ex.Placeholders()
        request: dict = {"TableName": info.name}
        if key_condition is not None:
            request["KeyConditionExpression"] = self._expression(ex.condition_text, key_condition, ph, "k")
        if K_FORWARD in kw:
            request["ScanIndexForward"] = bool(kw[K_FORWARD])
        return self._read_many("Query", info, request, kw, ph, cache_id=(key_condition,))

    def scan(self, table_name: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        info = self.table(_text(table_name, "table name"))
        ph = ex.Placeholders()
        request: dict = {"TableName": info.name}
        # Each is passed on whenever present, even alone or out of range: DynamoDB then rejects the
        # request with its own ValidationException (dropping a lone Segment would turn it into a full scan).
        for kwarg, param in ((K_SEGMENT, "Segment"), (K_TOTAL_SEGMENTS, "TotalSegments")):
            if kwarg in kw:
                request[param] = _int(kw[kwarg], param)
        return self._read_many("Scan", info, request, kw, ph, cache_id=())

    def _read_many(self, op: str, info: TableInfo, request: dict, kw: dict, ph: ex.Placeholders,
                   cache_id: tuple) -> bytes:
        index = _text(kw[K_INDEX], "index name") if K_INDEX in kw else None
        if index is not None:
            request["IndexName"] = index
        if K_FILTER in kw:
            request["FilterExpression"] = self._expression(ex.condition_text, kw[K_FILTER], ph, "f")
        paths = self._projection(kw)
        if paths:
            request["ProjectionExpression"] = ex.projection_for_dynamodb(paths, ph)
        if K_SELECT in kw:
            select = SELECT.get(kw[K_SELECT])
            if select is None:
                raise validation(f"unknown Select value {kw[K_SELECT]!r}")
            request["Select"] = select
        if K_LIMIT in kw:
            request["Limit"] = _int(kw[K_LIMIT], "Limit")
        if kw.get(K_CONSISTENT):
            request["ConsistentRead"] = True
        if K_START_KEY in kw:
            request["ExclusiveStartKey"] = self._decode_start_key(kw[K_START_KEY], info, index)
        ph.apply(request)
        rcc = _rcc(kw)

        consistent = bool(kw.get(K_CONSISTENT))
        cache_key = (op, info.name, *cache_id, _params_identity(kw))
        result = _MISS if consistent else self.query_cache.get(cache_key, _MISS)
        cc = None
        if result is _MISS:
            if not consistent:
                self.stats.incr(f"{op}CacheMisses")
            response = self._call(op.lower(), request, rcc)
            result = {k: response[k] for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey") if k in response}
            cc = response.get("ConsumedCapacity")
            if not consistent:
                self.query_cache.put(cache_key, result, estimate_size(result))
        else:
            self.stats.incr(f"{op}CacheHits")
            cc = _zero_cc(info.name, rcc)

        out: dict = {}
        if "Items" in result:
            if paths:
                out[R_ITEMS] = _raw(_array([self._projection_map(item, paths) for item in result["Items"]]))
            else:
                out[R_ITEMS] = _raw(_array([self._scan_pair(item, info) for item in result["Items"]]))
        out[R_COUNT] = result.get("Count", 0)
        out[R_SCANNED] = result.get("ScannedCount", 0)
        if "LastEvaluatedKey" in result:
            lek = result["LastEvaluatedKey"]
            out[R_LEK] = codec.encode_compound_key(lek) if index else codec.encode_key(lek, info.schema)
        _put_cc(out, cc, rcc)
        return _normal_reply(out)

    # ------------------------------------------------------------------ batches

    def batch_get_item(self, request_items: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        rcc = _rcc(kw)
        if not isinstance(request_items, dict) or not request_items:
            raise validation("RequestItems must be a non-empty map")
        plans = []  # (info, consistent, paths, [(key_bytes, key)], {i: item})
        fetch: dict[str, dict] = {}
        total = 0
        for table_name, spec in request_items.items():
            if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[2], list)):
                raise validation("each table needs [consistentRead, projection, keys]")
            consistent, projection, key_list = spec
            info = self.table(_text(table_name, "table name"))
            paths = self._projection({K_PROJECTION: projection} if projection is not None else {})
            keys = [(kb, self._decode_key(kb, info)) for kb in key_list]
            total += len(keys)
            found: dict[int, Any] = {}
            for i, (_, key) in enumerate(keys):
                if consistent:
                    continue
                cached = self.item_cache.get((info.name, codec.cache_key(key, info.schema)), _MISS)
                if cached is _MISS:
                    self.stats.incr("ItemCacheMisses")
                else:
                    self.stats.incr("ItemCacheHits")
                    found[i] = cached
            missing = [key for i, (_, key) in enumerate(keys) if i not in found]
            if missing:
                fetch[info.name] = {"Keys": missing, **({"ConsistentRead": True} if consistent else {})}
            plans.append((info, bool(consistent), paths, keys, found))
        if total > 100:
            raise validation("Too many items requested for the BatchGetItem call")

        stamp = self.item_cache.stamp()
        fetched: dict[str, dict] = {}
        unprocessed: dict[str, list] = {}
        ccs: list = []
        for attempt in range(BATCH_RETRIES + 1):
            if not fetch:
                break
            if attempt:
                time.sleep(0.05 * 2 ** attempt)
            response = self._call("batch_get_item", {"RequestItems": fetch}, rcc)
            ccs.extend(response.get("ConsumedCapacity", []))
            for table, items in response.get("Responses", {}).items():
                info = self.table(table)
                for item in items:
                    fetched.setdefault(table, {})[codec.cache_key(item, info.schema)] = item
            fetch = response.get("UnprocessedKeys") or {}
        for table, spec in fetch.items():
            unprocessed[table] = spec["Keys"]

        enc = cbor.Encoder().array(2).map(len(plans))
        unprocessed_out: dict[str, list] = {}
        for info, consistent, paths, keys, found in plans:
            left = {codec.cache_key(k, info.schema) for k in unprocessed.get(info.name, [])}
            entries = []
            for i, (key_bytes, key) in enumerate(keys):
                ck = codec.cache_key(key, info.schema)
                if i in found:
                    item = None if found[i] is NEGATIVE else found[i]
                elif ck in left:
                    unprocessed_out.setdefault(info.name, []).append(key_bytes)
                    continue
                else:
                    item = fetched.get(info.name, {}).get(ck)
                    if not consistent:
                        self.item_cache.fill((info.name, ck), item if item is not None else NEGATIVE,
                                             _item_size(item), since=stamp)
                if item is not None:
                    entries.append((key_bytes, item))
            enc.text(info.name)
            if paths:
                enc.array(len(entries))
                for _, item in entries:
                    enc.raw(self._projection_map(item, paths))
            else:
                enc.array(2 * len(entries))
                for key_bytes, item in entries:
                    enc.bytes(key_bytes).bytes(self._values_blob(item, info))
        enc.map(len(unprocessed_out))
        for table, key_list in unprocessed_out.items():
            enc.text(table).array(len(key_list))
            for key_bytes in key_list:
                enc.bytes(key_bytes)
        _cc_array(enc, ccs if rcc != "NONE" else [])
        return bytes(enc)

    def batch_write_item(self, request_items: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        rcc = _rcc(kw)
        if not isinstance(request_items, dict) or not request_items:
            raise validation("RequestItems must be a non-empty map")
        writes: dict[str, list] = {}
        infos: dict[str, TableInfo] = {}
        for table_name, flat in request_items.items():
            info = self.table(_text(table_name, "table name"))
            infos[info.name] = info
            if not isinstance(flat, list) or len(flat) % 2:
                raise validation("write requests must be [key, values|null] pairs")
            for key_bytes, values in zip(flat[::2], flat[1::2]):
                key = self._decode_key(key_bytes, info)
                if values is None:
                    writes.setdefault(info.name, []).append({"DeleteRequest": {"Key": key}})
                else:
                    item = {**self._decode_values(values, info), **key}
                    writes.setdefault(info.name, []).append({"PutRequest": {"Item": item}})
        request: dict = {"RequestItems": writes}
        _add_ricm(request, kw)
        pending = writes
        ccs: list = []
        icm: dict[str, list] = {}
        for attempt in range(BATCH_RETRIES + 1):
            if attempt:
                time.sleep(0.05 * 2 ** attempt)
            request["RequestItems"] = pending
            response = self._call("batch_write_item", request, rcc)
            ccs.extend(response.get("ConsumedCapacity", []))
            for table, metrics in (response.get("ItemCollectionMetrics") or {}).items():
                icm.setdefault(table, []).extend(metrics)
            left = response.get("UnprocessedItems") or {}
            self._batch_write_through(pending, left, infos)
            pending = left
            if not pending:
                break

        enc = cbor.Encoder().map(len(pending))
        for table, reqs in pending.items():
            info = infos[table]
            enc.text(table).array(2 * len(reqs))
            for req in reqs:
                if "PutRequest" in req:
                    item = req["PutRequest"]["Item"]
                    enc.bytes(codec.encode_key(item, info.schema)).bytes(self._values_blob(item, info))
                else:
                    enc.bytes(codec.encode_key(req["DeleteRequest"]["Key"], info.schema)).null()
        _cc_array(enc, ccs if rcc != "NONE" else [])
        enc.map(len(icm))
        for table, metrics in icm.items():
            enc.text(table).array(len(metrics))
            for metric in metrics:
                enc.bytes(_icm_blob(metric))
        return bytes(enc)

    def _batch_write_through(self, sent: dict, unprocessed: dict, infos: dict) -> None:
        for table, reqs in sent.items():
            info = infos[table]
            left = {codec.cache_key(_write_key(r, info), info.schema) for r in unprocessed.get(table, [])}
            for req in reqs:
                key = _write_key(req, info)
                if codec.cache_key(key, info.schema) in left:
                    continue
                if "PutRequest" in req:
                    self._write_through(info, key, codec.canonical_item(req["PutRequest"]["Item"]))
                else:
                    self._write_through(info, key, NEGATIVE)

    # ------------------------------------------------------------------ transactions

    def transact_get_items(self, table_names: Any, keys: Any, projections: Any, kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        rcc = _rcc(kw)
        if not isinstance(table_names, list) or not isinstance(keys, list) or len(table_names) != len(keys):
            raise validation("tableNames and keys must be arrays of equal length")
        if projections is not None and (not isinstance(projections, list) or len(projections) != len(keys)):
            raise validation("projections must match keys")
        items, plan = [], []
        for i, (table_name, key_bytes) in enumerate(zip(table_names, keys)):
            info = self.table(_text(table_name, "table name"))
            key = self._decode_key(key_bytes, info)
            projection = projections[i] if projections else None
            paths = self._projection({K_PROJECTION: projection} if projection is not None else {})
            get: dict = {"TableName": info.name, "Key": key}
            if paths:
                ph = ex.Placeholders()
                get["ProjectionExpression"] = ex.projection_for_dynamodb(paths, ph)
                ph.apply(get)
            items.append({"Get": get})
            plan.append((info, paths))
        response = self._call("transact_get_items", {"TransactItems": items}, rcc)
        enc = cbor.Encoder().array(2).array(len(plan))
        for (info, paths), entry in zip(plan, response.get("Responses", [{}] * len(plan))):
            item = entry.get("Item")
            if item is None:
                enc.null()
            elif paths:
                enc.raw(self._projection_map(item, paths))
            else:
                enc.bytes(self._values_blob(item, info))
        _tx_cc(enc, response.get("ConsumedCapacity", []) if rcc != "NONE" else [])
        return bytes(enc)

    def transact_write_items(self, operations: Any, table_names: Any, keys: Any, values: Any,
                             return_values: Any, rv_on_failure: Any, conditions: Any, updates: Any,
                             kwargs: Any) -> bytes:
        kw = _kwargs(kwargs)
        rcc = _rcc(kw)
        n = len(operations) if isinstance(operations, list) else -1
        for name, arr in (("tableNames", table_names), ("keys", keys)):
            if not isinstance(arr, list) or len(arr) != n:
                raise validation(f"{name} must have one entry per operation")
        values = _per_op(values, n, "values")
        rv_on_failure = _per_op(rv_on_failure, n, "returnValuesOnConditionCheckFailure")
        conditions = _per_op(conditions, n, "conditionExpressions")
        updates = _per_op(updates, n, "updateExpressions")

        items, written = [], []
        for i, op in enumerate(operations):
            info = self.table(_text(table_names[i], "table name"))
            key = self._decode_key(keys[i], info)
            ph = ex.Placeholders()
            body: dict = {"TableName": info.name}
            if op == TX_PUT:
                if values[i] is None:
                    raise validation("Put needs an item")
                body["Item"] = {**self._decode_values(values[i], info), **key}
                kind = "Put"
            elif op in (TX_DELETE, TX_UPDATE, TX_CHECK):
                body["Key"] = key
                kind = {TX_DELETE: "Delete", TX_UPDATE: "Update", TX_CHECK: "ConditionCheck"}[op]
            else:
                raise validation(f"unknown transaction operation {op!r}")
            if op == TX_UPDATE:
                if updates[i] is None:
                    raise validation("Update needs an update expression")
                body["UpdateExpression"] = self._expression(ex.update_text, updates[i], ph, "u")
            if conditions[i] is not None:
                body["ConditionExpression"] = self._expression(ex.condition_text, conditions[i], ph, "c")
            elif op == TX_CHECK:
                raise validation("ConditionCheck needs a condition expression")
            if rv_on_failure[i] == 2:
                body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            items.append({kind: ph.apply(body)})
            if op != TX_CHECK:
                written.append((info, key))
        request: dict = {"TransactItems": items}
        _add_ricm(request, kw)
        if K_TOKEN in kw:
            request["ClientRequestToken"] = _text(kw[K_TOKEN], "ClientRequestToken")
        response = self._call("transact_write_items", request, rcc)
        self._schedule_refresh(written)

        enc = cbor.Encoder().array(3).null()
        _tx_cc(enc, response.get("ConsumedCapacity", []) if rcc != "NONE" else [])
        icm = response.get("ItemCollectionMetrics") or {}
        enc.map(len(icm))
        for table, metrics in icm.items():
            enc.text(table).array(len(metrics))
            for metric in metrics:
                enc.bytes(_icm_blob(metric))
        return bytes(enc)

    def _schedule_refresh(self, written: list) -> None:
        if not written:
            return
        if self.tx_refresh_delay <= 0:
            self.refresh_items(written)
            return
        timer = threading.Timer(self.tx_refresh_delay, self._background_refresh, args=(written,))
        timer.daemon = True
        self._refreshers.add(timer)
        timer.start()

    def _background_refresh(self, written: list) -> None:
        try:
            self.refresh_items(written)
        except Exception:  # a failed refresh only leaves the old entries to expire
            log.exception("background item-cache refresh failed")
        finally:
            self._refreshers.discard(threading.current_thread())  # type: ignore[arg-type]

    def refresh_items(self, written: list) -> None:
        """Re-read written items with TransactGetItems and store them (DAX's post-transaction refresh)."""
        stamp = self.item_cache.stamp()
        for start in range(0, len(written), TRANSACT_GET_CHUNK):
            chunk = written[start:start + TRANSACT_GET_CHUNK]
            response = self.ddb.transact_get_items(
                TransactItems=[{"Get": {"TableName": info.name, "Key": key}} for info, key in chunk]
            )
            for (info, key), entry in zip(chunk, response.get("Responses", [])):
                item = entry.get("Item")
                ck = (info.name, codec.cache_key(key, info.schema))
                value = item if item is not None else NEGATIVE
                if self.item_cache.fill(ck, value, _item_size(item), since=stamp) and self.on_cache_write:
                    self.on_cache_write(ck, value, _item_size(item))

    def cancel_refreshes(self) -> None:
        for timer in list(self._refreshers):
            timer.cancel()

    # ------------------------------------------------------------------ helpers

    def table(self, name: str) -> TableInfo:
        """The table's key schemas, from DescribeTable, cached for ``SCHEMA_TTL_SECONDS``."""
        now = self.clock()
        with self._tables_lock:
            info = self._tables.get(name)
        if info is not None and now - info.fetched_at < SCHEMA_TTL_SECONDS:
            return info
        try:
            table = self.ddb.describe_table(TableName=name)["Table"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise DaxError(f"Requested resource not found: Table: {name} not found",
                               ddb_code="ResourceNotFoundException", codes=TABLE_NOT_FOUND) from exc
            raise _from_client_error(exc) from exc
        types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}

        def schema_of(key_schema: list) -> list:
            ordered = sorted(key_schema, key=lambda k: k["KeyType"] != "HASH")
            return [(k["AttributeName"], types[k["AttributeName"]]) for k in ordered]

        indexes = {}
        for idx in table.get("GlobalSecondaryIndexes", []) + table.get("LocalSecondaryIndexes", []):
            indexes[idx["IndexName"]] = schema_of(idx["KeySchema"])
        info = TableInfo(name=name, schema=schema_of(table["KeySchema"]), indexes=indexes,
                         has_lsi=bool(table.get("LocalSecondaryIndexes")), fetched_at=now)
        with self._tables_lock:
            self._tables[name] = info
        return info

    def _cached_get(self, info: TableInfo, key: dict, rcc: str) -> tuple[dict | None, dict | None]:
        ck = (info.name, codec.cache_key(key, info.schema))
        cached = self.item_cache.get(ck, _MISS)
        if cached is not _MISS:
            self.stats.incr("ItemCacheHits")
            return (None if cached is NEGATIVE else cached), _zero_cc(info.name, rcc)
        self.stats.incr("ItemCacheMisses")
        stamp = self.item_cache.stamp()
        response = self._call("get_item", {"TableName": info.name, "Key": key}, rcc)
        item = response.get("Item")
        self.item_cache.fill(ck, item if item is not None else NEGATIVE, _item_size(item), since=stamp)
        return item, response.get("ConsumedCapacity")

    def _write_through(self, info: TableInfo, key: dict, item: Any) -> None:
        ck = (info.name, codec.cache_key(key, info.schema))
        size = _item_size(None if item is NEGATIVE else item)
        self.item_cache.put(ck, item, size)
        if self.on_cache_write:
            self.on_cache_write(ck, item, size)

    def _write_reply(self, info: TableInfo, response: dict, kw: dict, return_values: str) -> bytes:
        out: dict = {}
        attributes = response.get("Attributes")
        if attributes and return_values in ("ALL_OLD", "ALL_NEW"):
            out[R_ATTRIBUTES] = self._values_blob(attributes, info)
        elif attributes and return_values in ("UPDATED_OLD", "UPDATED_NEW"):
            names = sorted(attributes)
            enc = cbor.Encoder().int(self.registry.id_for(names)).map(len(names))
            for ordinal, name in enumerate(names):
                enc.int(ordinal)
                codec.encode_av(enc, attributes[name])
            out[R_ATTRIBUTES] = bytes(enc)
        _put_cc(out, response.get("ConsumedCapacity"), _rcc(kw))
        if response.get("ItemCollectionMetrics"):
            out[R_ICM] = _icm_blob(response["ItemCollectionMetrics"])
        return _normal_reply(out)

    def _call(self, method: str, request: dict, rcc: str) -> dict:
        if rcc != "NONE":
            request["ReturnConsumedCapacity"] = rcc
        try:
            return getattr(self.ddb, method)(**request)
        except ClientError as exc:
            raise _from_client_error(exc) from exc

    def _decode_key(self, key_bytes: Any, info: TableInfo) -> dict:
        try:
            return codec.decode_key(key_bytes, info.schema)
        except (codec.CodecError, cbor.CborError) as exc:
            raise validation(f"malformed key for table {info.name}: {exc}") from exc

    def _decode_values(self, values: Any, info: TableInfo) -> dict:
        try:
            ident, avs = codec.decode_values(values)
        except (codec.CodecError, cbor.CborError) as exc:
            raise validation(f"malformed item values: {exc}") from exc
        try:
            attrs = self.registry.item_from_values(ident, avs)
        except ValueError as exc:
            raise validation(str(exc)) from exc
        clash = {name for name, _ in info.schema} & set(attrs)
        if clash:
            raise validation(f"key attributes {sorted(clash)} repeated among the item's values")
        return attrs

    def _decode_start_key(self, data: Any, info: TableInfo, index: str | None) -> dict:
        if not isinstance(data, bytes):
            raise validation("ExclusiveStartKey must be a byte string")
        try:
            return codec.decode_compound_key(data) if index else codec.decode_key(data, info.schema)
        except (codec.CodecError, cbor.CborError) as exc:
            raise validation(f"malformed ExclusiveStartKey: {exc}") from exc

    def _names_for(self, ident: int) -> tuple:
        try:
            return self.registry.names_for(ident)
        except ValueError as exc:
            raise validation(str(exc)) from exc

    def _projection(self, kw: dict) -> list | None:
        if K_PROJECTION not in kw or kw[K_PROJECTION] is None:
            return None
        data = kw[K_PROJECTION]
        try:
            paths = ex.projection_paths(data if isinstance(data, bytes) else b"")
            ex.check_projection(paths)
        except (ex.ExpressionError, cbor.CborError) as exc:
            raise validation(str(exc)) from exc
        return paths

    @staticmethod
    def _expression(render: Callable, compiled: Any, ph: ex.Placeholders, prefix: str) -> str:
        if not isinstance(compiled, bytes):
            raise validation("expressions must be compiled byte strings")
        try:
            return render(compiled, ph, prefix)
        except (ex.ExpressionError, codec.CodecError, cbor.CborError) as exc:
            raise validation(f"malformed expression: {exc}") from exc

    def _add_condition(self, request: dict, kw: dict, ph: ex.Placeholders) -> None:
        if K_CONDITION in kw:
            request["ConditionExpression"] = self._expression(ex.condition_text, kw[K_CONDITION], ph, "c")

    def _values_blob(self, item: dict, info: TableInfo) -> bytes:
        return self.encoded.get(("values", info.name), item, lambda: self._encode_values(item, info))

    def _encode_values(self, item: dict, info: TableInfo) -> bytes:
        key_names = {name for name, _ in info.schema}
        names = sorted(n for n in item if n not in key_names)
        return codec.encode_values(self.registry.id_for(names), (item[n] for n in names))

    def _values_blob_cbor(self, item: dict, info: TableInfo) -> bytes:
        return self.encoded.get(("values-cbor", info.name), item,
                                lambda: bytes(cbor.Encoder().bytes(self._values_blob(item, info))))

    def _scan_pair(self, item: dict, info: TableInfo) -> bytes:
        def encode() -> bytes:
            enc = cbor.Encoder().array(2)
            enc.bytes(codec.encode_key(item, info.schema)).bytes(self._values_blob(item, info))
            return bytes(enc)

        return self.encoded.get(("pair", info.name), item, encode)

    @staticmethod
    def _projection_map(item: dict, paths: list) -> bytes:
        projected = ex.project(item, paths)
        enc = cbor.Encoder().map(len(projected))
        for ordinal, av in projected.items():
            enc.int(ordinal)
            codec.encode_av(enc, av)
        return bytes(enc)


# ---------------------------------------------------------------------- module helpers


class EncodedMemo:
    """The wire encoding of cached items, kept beside them so a hit is not re-encoded.

    Keyed by the identity of the item object the caches hold: a write stores a new object (the
    caches never change an item in place), so a changed item can never be answered with its old
    bytes; the memo holds the item itself too, so an identity cannot be reused while its entry
    lives. Bounded by the bytes it holds (LRU); ``enabled = False`` encodes every time."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.enabled = True
        self._entries: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, kind: tuple, item: dict, encode: Callable[[], bytes]) -> bytes:
        if not self.enabled:
            return encode()
        key = (kind, id(item))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] is item:
                self._entries.move_to_end(key)
                return hit[1]
        data = encode()
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._entries[key] = (item, data)
            self._bytes += len(data)
            while self._bytes > self.max_bytes and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= len(dropped)
        return data


class _Raw(bytes):
    """Already-encoded CBOR to splice into a reply."""


def _raw(data: bytes) -> _Raw:
    return _Raw(data)


def _array(encoded_items: list[bytes]) -> bytes:
    enc = cbor.Encoder().array(len(encoded_items))
    for data in encoded_items:
        enc.raw(data)
    return bytes(enc)


def _normal_reply(fields: dict) -> bytes:
    enc = cbor.Encoder().map(len(fields))
    for rid in sorted(fields):
        enc.int(rid)
        value = fields[rid]
        if isinstance(value, _Raw):
            enc.raw(value)
        else:
            enc.value(value)
    return bytes(enc)


def _cc_blob(cc: dict) -> bytes:
    enc = cbor.Encoder().text(cc["TableName"]).float(float(cc.get("CapacityUnits", 0.0)))
    if "Table" in cc:
        enc.float(float(cc["Table"].get("CapacityUnits", 0.0)))
    else:
        enc.null()
    for field_name in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = cc.get(field_name)
        if indexes:
            enc.map(len(indexes))
            for name, units in indexes.items():
                enc.text(name).float(float(units.get("CapacityUnits", 0.0)))
        else:
            enc.null()
    return bytes(enc)


def _put_cc(out: dict, cc: dict | None, rcc: str) -> None:
    if rcc != "NONE" and cc:
        out[R_CC] = _cc_blob(cc)


def _zero_cc(table: str, rcc: str) -> dict | None:
    """Capacity for an answer served from the cache: nothing was read from DynamoDB."""
    if rcc == "NONE":
        return None
    cc: dict = {"TableName": table, "CapacityUnits": 0.0}
    if rcc == "INDEXES":
        cc["Table"] = {"CapacityUnits": 0.0}
    return cc


def _cc_array(enc: cbor.Encoder, ccs: list) -> None:
    enc.array(len(ccs))
    for cc in ccs:
        enc.bytes(_cc_blob(cc))


_TX_CC_FIELDS = {"CapacityUnits": 1, "ReadCapacityUnits": 2, "WriteCapacityUnits": 3}


def _tx_cc_map(cc: dict) -> dict:
    out: dict = {code: float(cc[name]) for name, code in _TX_CC_FIELDS.items() if name in cc}
    if "TableName" in cc:
        out[4] = cc["TableName"]
    if "Table" in cc:
        out[5] = _tx_cc_map(cc["Table"])
    for name, code in (("GlobalSecondaryIndexes", 6), ("LocalSecondaryIndexes", 7)):
        if cc.get(name):
            out[code] = {index: _tx_cc_map(units) for index, units in cc[name].items()}
    return out


def _tx_cc(enc: cbor.Encoder, ccs: list) -> None:
    enc.value([_tx_cc_map(cc) for cc in ccs])


def _icm_blob(metrics: dict) -> bytes:
    enc = cbor.Encoder()
    (_, key_av), = metrics["ItemCollectionKey"].items()
    codec.encode_av(enc, key_av)
    low, high = metrics.get("SizeEstimateRangeGB", [0.0, 0.0])
    enc.float(float(low)).float(float(high))
    return bytes(enc)


def _item_size(item: dict | None) -> int:
    return 16 if item is None else estimate_size(item)


def _write_key(req: dict, info: TableInfo) -> dict:
    if "PutRequest" in req:
        return codec.key_of(req["PutRequest"]["Item"], info.schema)
    return req["DeleteRequest"]["Key"]


def _params_identity(kw: dict) -> tuple:
    """Every request parameter except ReturnConsumedCapacity, in a hashable, order-free form."""
    return tuple(sorted((k, cbor.dumps(v)) for k, v in kw.items() if k != K_RCC))


def _kwargs(kwargs: Any) -> dict:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise validation("request parameters must be a map")
    return kwargs


def _rcc(kw: dict) -> str:
    value = kw.get(K_RCC, 0)
    if value not in RETURN_CC:
        raise validation(f"unknown ReturnConsumedCapacity {value!r}")
    return RETURN_CC[value]


def _return_values(kw: dict) -> str:
    value = kw.get(K_RETURN_VALUES, 1)
    if value not in RETURN_VALUES:
        raise validation(f"unknown ReturnValues {value!r}")
    return RETURN_VALUES[value]


def _add_ricm(request: dict, kw: dict) -> None:
    if kw.get(K_RICM) == 1:
        request["ReturnItemCollectionMetrics"] = "SIZE"


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise validation(f"{what} is not valid UTF-8") from exc
    if isinstance(value, str):
        return value
    raise validation(f"{what} must be text")


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise validation(f"{what} must be an integer")
    return value


def _per_op(values: Any, n: int, what: str) -> list:
    if values is None:
        return [None] * n
    if not isinstance(values, list) or len(values) != n:
        raise validation(f"{what} must have one entry per operation")
    return values


def _from_client_error(exc: ClientError) -> DaxError:
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code = error.get("Code") or "InternalServerError"
    reasons = None
    if code == "TransactionCanceledException":
        reasons = []
        for reason in exc.response.get("CancellationReasons", []):
            item = reason.get("Item")
            reasons += [reason.get("Code"), reason.get("Message"), codec.encode_compound_key(item) if item else None]
    return DaxError(error.get("Message") or code, ddb_code=code, http_status=meta.get("HTTPStatusCode") or 400,
                    request_id=meta.get("RequestId"), cancellation_reasons=reasons)

