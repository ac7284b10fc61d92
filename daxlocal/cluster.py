"""A cluster of local DAX nodes: membership, leader election, write forwarding, replication.

See docs/dax-protocol.md §Cluster. In short:

* **Coordination is a DynamoDB table** (``--cluster-table``, created on demand): per cluster one
  item per member (``member#<index>``: address, ports, AZ, a heartbeat counter, the process's
  incarnation id) and one leader lease (``lease``: owner incarnation, counter). A real primitive,
  not timing alone: the leader renews the lease with a write conditional on owner *and* counter;
  a node takes it over only with a write conditional on the counter it observed unchanged for
  ``lease_seconds`` by its own monotonic clock (the Kinesis Client Library's rule), so two nodes
  can never both win, and wall clocks are never compared.
* **Membership**: a member whose heartbeat counter has not moved for ``member_timeout`` seconds
  (by the observer's clock) is left out of the ``endpoints`` reply; the lease owner is role 1
  (leader), every other live member role 2 (replica).
* **Writes** reach the leader: the client sends them to its leader route, but with no leader
  route it sends them to any node. A replica forwards a write to the leader over the peer port and
  relays the leader's reply byte for byte; with no leader known it answers with a class-2 error
  ("wait for the cluster": the client retries, the app falls back to DynamoDB). Only the leader
  writes to DynamoDB, and a leader that cannot renew its lease stops acting as one.
* **Replication**: every item-cache store the leader makes on a write (write-through, the
  post-transaction refresh) is queued to every replica and sent over its peer port, in order,
  after ``replication_delay_ms`` (0: as soon as the sender thread gets to it). A replica's own
  misses fill its own cache.
* A restarted node has a new incarnation id, so it can never resume an old lease: it rejoins as
  a replica.

The peer port speaks length-prefixed CBOR frames (4-byte big-endian length): ``["forward",
method_id, args]`` → the DAX reply bytes; ``["replicate", entries, sent_at_ms]`` → ``b""``.
It binds loopback by default and trusts its peers, like the DAX port (no TLS, no SigV4 here).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

from . import cbor
from .cache import NEGATIVE
from .errors import DaxError

log = logging.getLogger("daxlocal.cluster")

LEADER, REPLICA = 1, 2
# The write methods (docs/dax-protocol.md §Method ids): the only ones a replica forwards.
WRITE_METHODS = frozenset({-2106490455, 1425579023, 1013539361, 116217951, -1160037738})
_FRAME = struct.Struct(">I")
_MAX_FRAME = 64 << 20


@dataclass
class ClusterConfig:
    name: str
    table: str = "daxlocal-cluster"
    index: int = 0  # the node's place in the cluster: its endpoint node id is index + 1
    availability_zone: str | None = None  # default local-1a, local-1b, ... by index
    heartbeat_seconds: float = 0.5
    member_timeout_seconds: float = 3.0
    lease_seconds: float = 3.0
    replication_delay_ms: int = 0
    peer_host: str = "127.0.0.1"
    peer_port: int = 0

    @property
    def az(self) -> str:
        return self.availability_zone or f"local-1{'abcdefghijklmnopqrstuvwxyz'[self.index % 26]}"


class NoLeader(DaxError):
    """A write reached a replica while no leader is known: DAX error class 2 ("recoverable:
    wait for the cluster"), which the client retries and the app treats as DAX unavailable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ddb_code="InternalServerErrorException", codes=(2, 37, 54), http_status=503)


@dataclass
class Member:
    index: int
    incarnation: str
    address: str
    port: int
    peer_port: int
    stats_port: int | None
    az: str
    beat: int
    alive: bool = True


@dataclass
class _Seen:
    beat: int
    changed_at: float  # local monotonic time the counter was last seen to move


@dataclass
class ReplicationStats:
    applied_batches: int = 0
    applied_entries: int = 0
    last_lag_ms: float | None = None
    max_lag_ms: float = 0.0
    sent: dict = field(default_factory=dict)  # peer index -> entries sent
    dropped: dict = field(default_factory=dict)  # peer index -> entries lost to a failed link


class Cluster:
    """One node's view of and part in the cluster (started by DaxNode when a cluster is set)."""

    def __init__(self, config: ClusterConfig, *, dynamodb, advertise_address: str, port: int,
                 stats_port: int | None, item_cache, dispatch: Callable[[int, list], bytes],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.ddb = dynamodb
        self.address = advertise_address
        self.port = port
        self.stats_port = stats_port
        self.item_cache = item_cache
        self.dispatch = dispatch
        self.clock = clock
        self.incarnation = f"{config.index}-{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()
        self._members: dict[int, Member] = {}
        self._seen: dict[int, _Seen] = {}
        self._lease_owner: str | None = None
        self._lease_counter = 0
        self._lease_seen = _Seen(-1, 0.0)
        self._renewed_at: float | None = None  # when this node last renewed or took the lease
        self._beat = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peer = _PeerServer((config.peer_host, config.peer_port), self)
        self._peer_thread: threading.Thread | None = None
        # Replaced whole, never changed in place: write threads read it without a lock while the
        # heartbeat thread decides who gets a sender.
        self._senders: dict[int, _Sender] = {}
        self._forward = threading.local()
        self.replication = ReplicationStats()
        self.forwarded_writes = 0
        self.elections_won = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def peer_port(self) -> int:
        return self._peer.server_address[1]

    def start(self) -> None:
        _ensure_table(self.ddb, self.config.table)
        self._peer_thread = threading.Thread(target=self._peer.serve_forever, kwargs={"poll_interval": 0.05},
                                             name="dax-peer", daemon=True)
        self._peer_thread.start()
        self._tick()  # join at once, so the first endpoints reply already lists this node
        self._thread = threading.Thread(target=self._loop, name="dax-cluster", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        for sender in self._senders.values():
            sender.close()
        self._peer.shutdown()
        self._peer.server_close()

    def _loop(self) -> None:
        while not self._stop.wait(self.config.heartbeat_seconds):
            try:
                self._tick()
            except Exception:  # DynamoDB away for a moment: keep serving, try again next beat
                log.warning("cluster heartbeat failed", exc_info=True)

    # ------------------------------------------------------------------ membership and lease

    def _tick(self) -> None:
        self._beat += 1
        c = self.config
        self.ddb.put_item(TableName=c.table, Item={
            "pk": {"S": c.name}, "sk": {"S": f"member#{c.index:04d}"},
            "incarnation": {"S": self.incarnation}, "address": {"S": self.address}, "port": {"N": str(self.port)},
            "peer_port": {"N": str(self.peer_port)}, "stats_port": {"N": str(self.stats_port or 0)},
            "az": {"S": c.az}, "beat": {"N": str(self._beat)}, "pid": {"N": str(os.getpid())},
        })
        items = _query_all(self.ddb, c.table, c.name)
        now = self.clock()
        members: dict[int, Member] = {}
        lease = None
        for item in items:
            sk = item["sk"]["S"]
            if sk == "lease":
                lease = item
                continue
            m = Member(index=int(sk.split("#", 1)[1]), incarnation=item["incarnation"]["S"],
                       address=item["address"]["S"], port=int(item["port"]["N"]), peer_port=int(item["peer_port"]["N"]),
                       stats_port=int(item["stats_port"]["N"]) or None, az=item["az"]["S"], beat=int(item["beat"]["N"]))
            seen = self._seen.get(m.index)
            if seen is None or seen.beat != m.beat:
                self._seen[m.index] = seen = _Seen(m.beat, now)
            m.alive = m.index == c.index or now - seen.changed_at < c.member_timeout_seconds
            members[m.index] = m
        self._lease_step(lease, now)
        with self._lock:
            self._members = members
        self._sync_senders()

    def _lease_step(self, lease: dict | None, now: float) -> None:
        c = self.config
        key = {"pk": {"S": c.name}, "sk": {"S": "lease"}}
        if lease is None:
            self._try_lease(key, None, 1, "attribute_not_exists(pk)", {})
            return
        owner, counter = lease["owner"]["S"], int(lease["counter"]["N"])
        if counter != self._lease_seen.beat:
            self._lease_seen = _Seen(counter, now)
        if owner == self.incarnation:
            self._try_lease(key, None, counter + 1, "#o = :me AND #c = :c",
                            {":me": {"S": self.incarnation}, ":c": {"N": str(counter)}})
        elif now - self._lease_seen.changed_at >= c.lease_seconds:
            # The owner has not renewed for a whole lease period as this node's clock counts it.
            log.info("lease of %s expired (counter %s unchanged for %.1fs): taking over", owner, counter,
                     now - self._lease_seen.changed_at)
            if self._try_lease(key, None, counter + 1, "#c = :c", {":c": {"N": str(counter)}}):
                self.elections_won += 1
        else:
            with self._lock:
                self._lease_owner, self._lease_counter = owner, counter
                if self._renewed_at is not None:
                    self._renewed_at = None  # someone else holds it now

    def _try_lease(self, key: dict, previous: str | None, counter: int, condition: str, values: dict) -> bool:
        names = {n: v for n, v in (("#o", "owner"), ("#c", "counter")) if n in condition}
        kwargs: dict[str, Any] = {"ConditionExpression": condition}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.ddb.put_item(TableName=self.config.table, Item={
                **key, "owner": {"S": self.incarnation}, "counter": {"N": str(counter)}}, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            with self._lock:  # another node moved the lease first: it is theirs (read on the next beat)
                self._renewed_at = None
                self._lease_owner = previous
            return False
        with self._lock:
            if self._lease_owner != self.incarnation:
                log.info("node %s (%s) is the leader, lease counter %s", self.config.index, self.incarnation, counter)
            self._lease_owner, self._lease_counter, self._renewed_at = self.incarnation, counter, self.clock()
        self._lease_seen = _Seen(counter, self.clock())
        return True

    def is_leader(self) -> bool:
        """Holds the lease and renewed it recently enough that nobody can have taken it over:
        takeover needs a whole ``lease_seconds`` without renewal, so acting for less than that
        after the last renewal is safe (minus a heartbeat of margin)."""
        with self._lock:
            if self._lease_owner != self.incarnation or self._renewed_at is None:
                return False
            margin = self.config.lease_seconds - self.config.heartbeat_seconds
            return self.clock() - self._renewed_at < margin

    def leader(self) -> Member | None:
        with self._lock:
            for m in self._members.values():
                if m.incarnation == self._lease_owner and m.alive:
                    return m
        return None

    def members(self) -> list[Member]:
        with self._lock:
            return sorted(self._members.values(), key=lambda m: m.index)

    # ------------------------------------------------------------------ the endpoints reply

    def endpoints(self) -> list[dict]:
        """Every live member, leader first (docs/dax-protocol.md §Endpoint discovery)."""
        with self._lock:
            owner, counter = self._lease_owner, self._lease_counter
            live = [m for m in self._members.values() if m.alive]
        out = []
        for m in sorted(live, key=lambda m: (m.incarnation != owner, m.index)):
            out.append({0: m.index + 1, 1: "localhost", 2: socket.inet_aton(m.address), 3: m.port,
                        4: LEADER if m.incarnation == owner else REPLICA, 5: m.az, 6: counter})
        return out

    # ------------------------------------------------------------------ writes at a replica

    def forward(self, method_id: int, args: list) -> bytes:
        """Send a write to the leader and return its reply bytes unchanged."""
        leader = self.leader()
        if leader is None or leader.index == self.config.index:
            raise NoLeader("no DAX leader is known right now (an election is under way); retry")
        conn = getattr(self._forward, "conn", None)
        if conn is None or conn.target != (leader.address, leader.peer_port):
            if conn is not None:
                conn.close()
            try:
                conn = _PeerConnection(leader.address, leader.peer_port)
            except OSError as exc:
                raise NoLeader(f"the DAX leader at {leader.address}:{leader.peer_port} is unreachable: {exc}") from exc
            self._forward.conn = conn
        try:
            reply = conn.call(["forward", method_id, args])
        except OSError as exc:
            conn.close()
            self._forward.conn = None
            # Whether the leader applied it is unknown: the same answer as a lost connection to a
            # real node (the app re-sends idempotently: conditions, client request tokens).
            raise NoLeader(f"the DAX leader went away during a forwarded write: {exc}") from exc
        with self._lock:
            self.forwarded_writes += 1
        return reply

    def dispatch_forwarded(self, method_id: int, args: list) -> bytes:
        """A write forwarded by a replica: run it here if this node leads, else refuse (the replica
        relays the refusal; the client retries against the membership it learns next)."""
        if not self.is_leader():
            return NoLeader("this node is no longer the DAX leader; retry").encode()
        return self.dispatch(method_id, args)

    # ------------------------------------------------------------------ replication

    def cache_written(self, key: tuple, value: Any, size: int) -> None:
        """The leader stored ``value`` under ``key`` because of a write: queue it to the replicas."""
        senders = self._senders
        if not senders:
            return
        entry = [key[0], list(key[1]), None if value is NEGATIVE else value, size]
        for sender in senders.values():
            sender.put(entry)

    def _sync_senders(self) -> None:
        """A sender per other member while this node holds the lease; none otherwise. Members
        that miss heartbeats keep theirs (a slow beat on a busy box must not lose entries; a
        sender to a node that is really gone just drops them, and it restarts cold)."""
        with self._lock:
            holder = self._lease_owner == self.incarnation
        wanted = {m.index: m for m in self.members() if m.index != self.config.index} if holder else {}
        senders = {}
        for index, sender in self._senders.items():
            m = wanted.get(index)
            if m is None or sender.target != (m.address, m.peer_port):
                sender.close()
            else:
                senders[index] = sender
        for index, m in wanted.items():
            if index not in senders:
                senders[index] = _Sender(self, index, (m.address, m.peer_port))
        self._senders = senders

    def apply_replicated(self, entries: list, sent_at_ms: float) -> None:
        for table, key_parts, value, size in entries:
            self.item_cache.put((table, tuple(key_parts)), NEGATIVE if value is None else value, size)
        lag = max(0.0, time.time() * 1000 - sent_at_ms)
        with self._lock:
            r = self.replication
            r.applied_batches += 1
            r.applied_entries += len(entries)
            r.last_lag_ms = round(lag, 2)
            r.max_lag_ms = round(max(r.max_lag_ms, lag), 2)

    # ------------------------------------------------------------------ stats

    def snapshot(self) -> dict:
        leader = self.leader()
        members = self.members()
        with self._lock:
            r = self.replication
            owner = self._lease_owner
            replication = {
                "AppliedBatches": r.applied_batches, "AppliedEntries": r.applied_entries,
                "LastLagMs": r.last_lag_ms, "MaxLagMs": r.max_lag_ms,
                "QueuedToReplicas": {str(i): s.depth() for i, s in self._senders.items()},
                "SentToReplicas": {str(i): n for i, n in r.sent.items()},
                "DroppedToReplicas": {str(i): n for i, n in r.dropped.items()},
                "DelayMs": self.config.replication_delay_ms,
            }
            forwarded = self.forwarded_writes
        return {
            "Name": self.config.name, "NodeId": self.config.index + 1, "Index": self.config.index,
            "Incarnation": self.incarnation, "Pid": os.getpid(), "AvailabilityZone": self.config.az,
            "Role": "leader" if self.is_leader() else "replica",
            "LeaderNodeId": leader.index + 1 if leader else None, "LeaseCounter": self._lease_counter,
            "ElectionsWon": self.elections_won, "ForwardedWrites": forwarded,
            "Members": [{"NodeId": m.index + 1, "Address": m.address, "Port": m.port, "StatsPort": m.stats_port,
                         "AvailabilityZone": m.az, "Alive": m.alive,
                         "Role": "leader" if m.incarnation == owner and m.alive else "replica"}
                        for m in members],
            "Replication": replication,
        }


# ---------------------------------------------------------------------- peer transport


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_FRAME.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return bytes(buf)


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = _FRAME.unpack(_recv_exact(sock, _FRAME.size))
    if length > _MAX_FRAME:
        raise ConnectionError(f"peer frame of {length} bytes is too large")
    return _recv_exact(sock, length)


class _PeerConnection:
    def __init__(self, address: str, port: int, timeout: float = 30.0) -> None:
        self.target = (address, port)
        self.sock = socket.create_connection(self.target, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, message: list) -> bytes:
        _send_frame(self.sock, cbor.dumps(message))
        return _recv_frame(self.sock)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _PeerServer:
    """The peer port: forwarded writes (on the leader) and replicated cache entries (on replicas)."""

    def __init__(self, address: tuple[str, int], cluster: Cluster) -> None:
        import socketserver

        outer = cluster

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock = self.request
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    while True:
                        message = cbor.loads(_recv_frame(sock))
                        kind = message[0]
                        if kind == "forward":
                            reply = outer.dispatch_forwarded(message[1], message[2])
                        elif kind == "replicate":
                            outer.apply_replicated(message[1], message[2])
                            reply = b""
                        else:
                            raise ConnectionError(f"unknown peer message {kind!r}")
                        _send_frame(sock, reply)
                except (ConnectionError, OSError, cbor.CborError, IndexError, TypeError) as exc:
                    log.debug("peer connection ended: %s", exc)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(address, Handler)

    @property
    def server_address(self):
        return self._server.server_address

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        self._server.serve_forever(poll_interval=poll_interval)

    def shutdown(self) -> None:
        self._server.shutdown()

    def server_close(self) -> None:
        self._server.server_close()


class _Sender:
    """Leader → one replica: entries in order, each sent no earlier than ``replication_delay_ms``
    after the write that made it (a slow link modelled), batched by what is due."""

    def __init__(self, cluster: Cluster, index: int, target: tuple[str, int]) -> None:
        self.cluster = cluster
        self.index = index
        self.target = target
        self.delay = cluster.config.replication_delay_ms / 1000
        self._queue: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"dax-replicate-{index}", daemon=True)
        self._thread.start()

    def put(self, entry: list) -> None:
        self._queue.put((time.monotonic(), entry))

    def depth(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._closed.set()
        self._queue.put(None)

    def _run(self) -> None:
        conn: _PeerConnection | None = None
        while not self._closed.is_set():
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < 500:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._closed.set()
                    break
                batch.append(nxt)
            due = batch[-1][0] + self.delay
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            entries = [e for _, e in batch]
            try:
                if conn is None:
                    conn = _PeerConnection(*self.target, timeout=5.0)
                conn.call(["replicate", entries, time.time() * 1000])
            except OSError as exc:
                # The replica is down or restarting: it starts cold, so what it missed is moot.
                log.info("replication to node %s failed (%s); %d entries dropped", self.index, exc, len(entries))
                if conn is not None:
                    conn.close()
                conn = None
                with self.cluster._lock:
                    d = self.cluster.replication.dropped
                    d[self.index] = d.get(self.index, 0) + len(entries)
                continue
            with self.cluster._lock:
                s = self.cluster.replication.sent
                s[self.index] = s.get(self.index, 0) + len(entries)
        if conn is not None:
            conn.close()


# ---------------------------------------------------------------------- the coordination table


class SharedAttributeLists:
    """The attribute-list registry shared by every node (docs/dax-protocol.md §Cluster): a client
    caches the id one node gave it and sends it to any other. Ids are content-derived, so an item
    per id is written unconditionally and never changes meaning."""

    def __init__(self, ddb, table: str) -> None:
        self.ddb = ddb
        self.table = table

    def save(self, ident: int, names: tuple[str, ...]) -> None:
        self.ddb.put_item(TableName=self.table, Item={
            "pk": {"S": "attribute-lists"}, "sk": {"S": str(ident)},
            "names": {"L": [{"S": n} for n in names]}})

    def load(self, ident: int) -> list[str] | None:
        item = self.ddb.get_item(TableName=self.table, ConsistentRead=True, Key={
            "pk": {"S": "attribute-lists"}, "sk": {"S": str(ident)}}).get("Item")
        return [v["S"] for v in item["names"]["L"]] if item else None


def _ensure_table(ddb, table: str) -> None:
    try:
        ddb.describe_table(TableName=table)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
    try:
        ddb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
    except ClientError as exc:  # another node of the cluster created it first
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = ddb.describe_table(TableName=table)["Table"].get("TableStatus")
        if status == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"cluster table {table} did not become ACTIVE")


def _query_all(ddb, table: str, name: str) -> list[dict]:
    items, start = [], None
    while True:
        kwargs: dict = {"TableName": table, "KeyConditionExpression": "pk = :n",
                        "ExpressionAttributeValues": {":n": {"S": name}}, "ConsistentRead": True}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = ddb.query(**kwargs)
        items += page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return items
