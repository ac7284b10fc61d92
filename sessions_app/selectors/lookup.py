"""Finding a session or a customer by its id or the start of it, in any case: the console's
lookup box (``/sessions/?q=``) and the sessions list's customer field. Bounded reads, never a Scan.

**Sessions** (``by_session_prefix``, GSI9 on META). Partition ``SIDP#`` + the first
``SESSION_PREFIX_MIN`` (8) characters of the lower-cased id, sort key the lower-cased id. Every
prefix a lookup accepts is at least 8 characters long, so all ids that start with it are in the
one partition its own first 8 characters name, and the lookup is a single Query with
``begins_with`` on the sort key, ``Limit`` 51: one request, at most 51 small index items (≈ 1-2
RCU), however many sessions there are. The partition is as fine as that allows — one per distinct
8-character start — so writes spread as widely as the ids themselves do (random ids such as the
API's uuid4 hex: ~4 × 10⁹ partitions; a prefix scheme coarser than the minimum would only
concentrate them). Ids that agree in their first 8 characters share a partition, necessarily: a
lookup of those 8 must find them all. An id shorter than 8 is its own partition, so a short query
that is not an exact id can still be matched case-insensitively and exactly (``SK = q``).

The keys are derived from the id alone and written once, in the session's creating PutItem
(``services.sessions._session_key_fields``; bulk loads and ``session_keys_backfill`` likewise).
The index projects only ``type`` and ``session_id`` — nothing an append, a close or a hand-off
changes — so no later write of META writes this index: the start pays one extra index write
(≈ 1 WCU), the hot path nothing.

The exact id comes first: a GetItem of META, strongly consistent (1 RCU; a session started a
moment ago is found, also before the index has it, and DAX's negative cache cannot hide it).

**Customers** are not items of their own elsewhere (sessions carry ``customer_id``; the
``by_customer`` index needs the exact id). The customer directory is one ``CustomerEntry`` per
customer id, ``CUSTOMER#<id>`` / ``CUSTOMER``, with GSI10 (``by_customer_prefix``): partition
``CIDP#`` + the first ``CUSTOMER_PREFIX_MIN`` (3) lower-cased characters, sort key the lower-cased
id. ``cust-001`` is then one Query on ``CIDP#cus`` with ``begins_with(cust-001)`` and finds
CUST-0010 … CUST-0019; ``CUST-0018`` finds cust-0018. Ids differing only in case are different
customers (ids are case-sensitive) and both are listed. Written by
``services.sessions.customer_directory_record`` before each session's META: one conditional
UpdateItem that only moves the entry's TTL forward, so the entry lives as long as the customer's
newest session; keys and the projected ``customer_id`` never change, so only a customer's first
session writes the index. A customer's privacy delete deletes the entry.

Why an item per customer and not a second set of keys on META: a customer has many sessions,
and a lookup must list each customer once — with keys on META, ``cust-0`` would return every
session of every matching customer and 51 items could name one customer. Coarser partitions for
customers (3 characters) because customer ids are usually few and structured (``cust-…``): the
index receives one write per new customer, far below a partition's limits.

Reads go straight to DynamoDB (``dax_bypassed``): DAX's query cache is not invalidated by writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import dynamo, keys
from ..exceptions import InvalidInput, SessionNotFound
from ..ids import ID_RULE, validate_id
from ..models import SessionMeta
from ..models.table import CustomerEntry
from .browse import Match, SessionRow, _rows
from .sessions import session_get, session_get_many
from .summaries import summary_state
from ..clock import utcnow

LOOKUP_LIMIT = 50  # matches listed; one more is read to know whether there are more
SESSION_PREFIX_MIN = keys.SESSION_PREFIX_MIN
CUSTOMER_PREFIX_MIN = keys.CUSTOMER_PREFIX_MIN


@dataclass(frozen=True)
class Matches:
    """Ids matching a lookup, in the index's order (lower-cased id), at most LOOKUP_LIMIT."""

    ids: list[str]
    more: bool  # more matched than are listed: refine the query
    exact: str | None = None  # the id equal to the query (case-sensitive), if it exists
    prefix: bool = True  # False: the query was too short for a prefix lookup (exact matches only)

    @property
    def single(self) -> str | None:
        """The one id this lookup names: the exact one, or the only match."""
        if self.exact is not None:
            return self.exact
        return self.ids[0] if len(self.ids) == 1 and not self.more else None


def _query(*, value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput("type a session or customer id, or the start of one", field="q")
    try:
        return validate_id(value, field="q")
    except InvalidInput:
        raise InvalidInput(f"an id is {ID_RULE}", field="q") from None


def session_lookup(*, query: str) -> Matches:
    """Sessions whose id is ``query`` or, case-insensitively, starts with it (8+ characters) —
    or, for a shorter ``query``, equals it case-insensitively. ``InvalidInput`` for a query that
    is no id at all. At most one GetItem and one Query."""
    query = _query(value=query)
    exact = None
    try:
        exact = session_get(session_id=query, consistent=True).session_id
    except SessionNotFound:
        pass
    fold = keys.session_lookup_sk(query)
    prefix = len(query) >= SESSION_PREFIX_MIN
    found = _prefix_query(SessionMeta.by_session_prefix, SessionMeta.gsi9sk, partition=keys.session_lookup_pk(query),
                          fold=fold, prefix=prefix, id_of=lambda meta: meta.session_id)
    if exact is not None and exact not in found:  # started a moment ago, or before the index
        found.insert(0, exact)
    return Matches(ids=found[:LOOKUP_LIMIT], more=len(found) > LOOKUP_LIMIT, exact=exact, prefix=prefix)


def customer_lookup(*, query: str) -> Matches:
    """Customers (from the customer directory) whose id starts with ``query`` in any case
    (3+ characters), or for a shorter ``query`` equals it in any case. One Query."""
    query = _query(value=query)
    fold = keys.customer_lookup_sk(query)
    prefix = len(query) >= CUSTOMER_PREFIX_MIN
    found = _prefix_query(CustomerEntry.by_customer_prefix, CustomerEntry.gsi10sk, partition=keys.customer_lookup_pk(query),
                          fold=fold, prefix=prefix, id_of=lambda entry: entry.customer_id)
    # The exact id sorts first (the shortest string with that prefix), so it is never cut off.
    exact = query if query in found else None
    return Matches(ids=found[:LOOKUP_LIMIT], more=len(found) > LOOKUP_LIMIT, exact=exact, prefix=prefix)


@dataclass(frozen=True)
class Lookup:
    """What the console's lookup box found for ``query``: sessions first, then customers."""

    query: str
    sessions: Matches
    customers: Matches

    @property
    def target(self) -> tuple[str, str] | None:
        """``("session", id)`` or ``("customer", id)`` when the query names one thing: an exact
        session id; else the only session matching while no customer does; else an exact
        customer id or the only customer matching, while no session does."""
        if self.sessions.exact is not None:
            return "session", self.sessions.exact
        if not self.sessions.ids:
            return ("customer", self.customers.single) if self.customers.single else None
        if self.sessions.single and not self.customers.ids:
            return "session", self.sessions.single
        return None

    @property
    def found(self) -> bool:
        return bool(self.sessions.ids or self.customers.ids)

    @property
    def error(self) -> str | None:
        """Why nothing could be looked up: the query is too short for either prefix."""
        if self.found or self.sessions.prefix:
            return None
        return (f"Type at least {SESSION_PREFIX_MIN} characters of a session id "
                f"(or {CUSTOMER_PREFIX_MIN} of a customer id), or a whole id.")


def lookup(*, query: str) -> Lookup:
    """The lookup box: a session by id or id prefix, and customers by id prefix, any case."""
    query = _query(value=query)
    return Lookup(query=query, sessions=session_lookup(query=query), customers=customer_lookup(query=query))


def lookup_rows(*, session_ids: list[str]) -> list[SessionRow]:
    """The session list's rows for these sessions (fresh META by BatchGetItem, presence, the
    summary's start), in the order given."""
    now = utcnow()
    metas = session_get_many(session_ids=session_ids)
    return _rows([Match(meta, summary_state(meta=meta, now=now)) for meta in metas])


def _prefix_query(index, sort_key, *, partition: str, fold: str, prefix: bool, id_of) -> list[str]:
    """One Query of a lookup index: the ids whose folded sort key starts with ``fold`` (equals it,
    for a query too short to be a prefix); one more than ``LOOKUP_LIMIT`` says there are more."""
    condition = sort_key.startswith(fold) if prefix else sort_key == fold
    with dynamo.dax_bypassed():
        return [id_of(item) for item in index.query(partition, range_key_condition=condition, limit=LOOKUP_LIMIT + 1)]
