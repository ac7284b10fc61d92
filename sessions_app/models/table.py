"""The DynamoDB single table, declared with PynamoDB.

| item            | PK               | SK                    | indexes                                   |
|-----------------|------------------|-----------------------|-------------------------------------------|
| session META    | SESSION#<id>     | META                  | by_customer, by_day, by_channel, by_status, summary_due, by_summary_state, … |
| turn            | SESSION#<id>     | TURN#<seq:010d>       |                                           |
| summary         | SESSION#<id>     | SUMMARY#<seq:010d>    | (keyed by the last turn it covers)        |
| client msg id   | SESSION#<id>     | MSGID#<client_msg_id> | (idempotency marker for turn appends)     |
| customer        | CUSTOMER#<id>    | CUSTOMER              | by_customer_prefix (the customer directory) |

META is also in by_session_prefix (a session by the start of its id, any case).

The indexes project only attributes that never change after a session starts (plus status, which
changes its key anyway), so the per-turn META update (turn count, last message time) writes the
base table only — no index write amplification on the hot path. Listings read the fresh META
items by BatchGetItem after the index query.

Table name, region and endpoint come from Django settings at call time (``_SettingsMeta``), so the
same declarations serve production, `make run` and per-test tables.
"""

from __future__ import annotations

import zlib

from django.conf import settings
from pynamodb.attributes import (
    Attribute,
    DiscriminatorAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.constants import BINARY
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from .. import dynamo


class SessionStatus:
    ACTIVE = "active"
    HANDED_OFF = "handed_off"
    CLOSED = "closed"
    ALL = (ACTIVE, HANDED_OFF, CLOSED)
    # Statuses present in the sparse by_status index (a closed session leaves it).
    INDEXED = (ACTIVE, HANDED_OFF)


CHANNELS = ("web", "app", "line", "email", "voice")
LOCALES = ("en", "ja")


class CompressedTextAttribute(Attribute[str]):
    """Unicode text stored zlib-compressed as a DynamoDB binary (B) value.

    Chat turns are mostly short natural-language text; compression keeps long assistant answers
    well under the 400 KB item limit and cuts read/write units for them.
    """

    attr_type = BINARY

    def serialize(self, value: str) -> bytes:
        return zlib.compress(value.encode("utf-8"), 6)

    def deserialize(self, value: bytes) -> str:
        return zlib.decompress(value).decode("utf-8")


class _SettingsMeta(type):
    """Model ``Meta`` whose connection parameters are read from Django settings on each access."""

    @property
    def table_name(cls) -> str:
        return settings.DYNAMODB_TABLE

    @property
    def region(cls) -> str:
        return settings.AWS_REGION

    @property
    def host(cls) -> str | None:
        return settings.DYNAMODB_ENDPOINT

    @property
    def max_retry_attempts(cls) -> int:
        return settings.DYNAMODB_MAX_RETRIES


_PROJECTED = ["type", "session_id", "customer_id", "channel", "locale", "status", "started_at"]


class ByCustomerIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_customer"
        projection = IncludeProjection(_PROJECTED)

    gsi1pk = UnicodeAttribute(hash_key=True, attr_name="GSI1PK")
    gsi1sk = UnicodeAttribute(range_key=True, attr_name="GSI1SK")


class ByDayIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_day"
        projection = IncludeProjection(_PROJECTED)

    gsi2pk = UnicodeAttribute(hash_key=True, attr_name="GSI2PK")
    gsi2sk = UnicodeAttribute(range_key=True, attr_name="GSI2SK")


class ByChannelIndex(GlobalSecondaryIndex):
    """by_day split by channel: a channel filter becomes a key condition instead of a
    FilterExpression that reads (and pays for) every other channel's sessions too."""

    class Meta:
        index_name = "by_channel"
        projection = IncludeProjection(_PROJECTED)

    gsi5pk = UnicodeAttribute(hash_key=True, attr_name="GSI5PK")
    gsi5sk = UnicodeAttribute(range_key=True, attr_name="GSI5SK")


class ByStatusIndex(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_status"
        projection = IncludeProjection(_PROJECTED)

    gsi3pk = UnicodeAttribute(hash_key=True, attr_name="GSI3PK")
    gsi3sk = UnicodeAttribute(range_key=True, attr_name="GSI3SK")


class SummaryDueIndex(GlobalSecondaryIndex):
    """Sparse: only sessions with turns no summary covers yet. The key is set once per
    unsummarised stretch (``if_not_exists`` in the append transaction) and removed when a summary
    covers the last turn, so appends do not rewrite the index. Keys plus ``type`` (PynamoDB's
    discriminator filter needs it): the sweep re-reads META strongly consistent anyway."""

    class Meta:
        index_name = "summary_due"
        projection = IncludeProjection(["type"])

    summary_due_pk = UnicodeAttribute(hash_key=True, attr_name="GSI4PK")
    summary_due_sk = UnicodeAttribute(range_key=True, attr_name="GSI4SK")


class BySummaryStateIndex(GlobalSecondaryIndex):
    """Every session under its summary state (none, pending, fresh, stale, failed), newest start
    first, so a summary filter is a key condition, not a FilterExpression over all of META. The
    sort key is set once at the start; the partition key moves only when the state does — a
    summary written, asked for or failed, and the first append after a fresh summary — never on
    other appends (services.turns, services.summaries keep it; docs/architecture.md §Summary
    states). "Pending" is stored without its expiry: a request older than
    SUMMARY_PENDING_MINUTES is listed from the pending partitions under the state it shows."""

    class Meta:
        index_name = "by_summary_state"
        projection = IncludeProjection(_PROJECTED)

    gsi8pk = UnicodeAttribute(hash_key=True, attr_name="GSI8PK")
    gsi8sk = UnicodeAttribute(range_key=True, attr_name="GSI8SK")


class HandoffQueueIndex(GlobalSecondaryIndex):
    """Sparse: handed-off sessions nobody owns — the "needs a human" queue, oldest first. Set
    when the bot asks for a human (or an owner's hold lapses), removed on takeover or hand-back."""

    class Meta:
        index_name = "handoff_queue"
        projection = IncludeProjection(_PROJECTED)

    gsi6pk = UnicodeAttribute(hash_key=True, attr_name="GSI6PK")
    gsi6sk = UnicodeAttribute(range_key=True, attr_name="GSI6SK")


class ByOwnerIndex(GlobalSecondaryIndex):
    """Sparse: the sessions each staff member owns now (the console's "mine")."""

    class Meta:
        index_name = "by_owner"
        projection = IncludeProjection(_PROJECTED)

    gsi7pk = UnicodeAttribute(hash_key=True, attr_name="GSI7PK")
    gsi7sk = UnicodeAttribute(range_key=True, attr_name="GSI7SK")


class SessionPrefixIndex(GlobalSecondaryIndex):
    """A session by the start of its id, any case (selectors.lookup): SIDP#<first 8 characters,
    lower-cased> / the lower-cased id, so a prefix of 8+ characters is one begins_with on one
    partition. Written once with META (never changed after), keys plus ``type`` and
    ``session_id`` projected: no append, close or hand-off ever writes this index."""

    class Meta:
        index_name = "by_session_prefix"
        projection = IncludeProjection(["type", "session_id"])

    gsi9pk = UnicodeAttribute(hash_key=True, attr_name="GSI9PK")
    gsi9sk = UnicodeAttribute(range_key=True, attr_name="GSI9SK")


class CustomerPrefixIndex(GlobalSecondaryIndex):
    """The customer directory by the start of a customer id, any case (selectors.lookup):
    CIDP#<first 3 characters, lower-cased> / the lower-cased id. Only CustomerEntry items carry
    these keys; their keys and ``customer_id`` never change, so a later session of a known
    customer writes the directory item only, not this index."""

    class Meta:
        index_name = "by_customer_prefix"
        projection = IncludeProjection(["type", "customer_id"])

    gsi10pk = UnicodeAttribute(hash_key=True, attr_name="GSI10PK")
    gsi10sk = UnicodeAttribute(range_key=True, attr_name="GSI10SK")


class ChatItem(Model):
    """Base of every item in the table; ``type`` tells them apart."""

    class Meta(metaclass=_SettingsMeta):
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True, attr_name="PK")
    sk = UnicodeAttribute(range_key=True, attr_name="SK")
    type = DiscriminatorAttribute(attr_name="type")
    expires_at = TTLAttribute(null=True, attr_name="ttl")
    # The app's write mark: every write this app makes to an item changes ``rev`` (a put sets 1,
    # an update adds 1 with :func:`app_write_mark`). The change feed compares the old and new
    # images: a change that left ``rev`` alone was made by someone else (a hand edit, another
    # service, a restore), so its cache effects were not applied yet (docs/architecture.md
    # §Change feed).
    rev = NumberAttribute(default=1, attr_name="rev")

    @classmethod
    def _get_connection(cls):
        # One routed connection for every model (see sessions_app.dynamo); the per-class
        # TableConnection is rebuilt when settings point at another table or endpoint.
        conn = cls._connection
        if conn is None or conn.table_name != cls.Meta.table_name or conn.connection is not dynamo.connection():
            cls._connection = dynamo.table_connection(table_name=cls.Meta.table_name, meta_table=_table_schema())
        return cls._connection


def app_write_mark():
    """The update action every app write to an existing item carries (see ``ChatItem.rev``)."""
    return ChatItem.rev.add(1)


def _table_schema():
    """The whole table's schema (keys and every index), declared by SessionMeta."""
    from pynamodb import constants
    from pynamodb.connection.base import MetaTable

    schema = SessionMeta._get_schema()
    return MetaTable({
        constants.TABLE_NAME: SessionMeta.Meta.table_name,
        constants.KEY_SCHEMA: schema["key_schema"],
        constants.ATTR_DEFINITIONS: schema["attribute_definitions"],
        constants.GLOBAL_SECONDARY_INDEXES: [
            {constants.INDEX_NAME: i["index_name"], constants.KEY_SCHEMA: i["key_schema"]}
            for i in schema["global_secondary_indexes"]
        ],
        constants.LOCAL_SECONDARY_INDEXES: [],
    })


class SessionMeta(ChatItem, discriminator="session"):
    session_id = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    channel = UnicodeAttribute()
    locale = UnicodeAttribute(default="en")
    status = UnicodeAttribute(default=SessionStatus.ACTIVE)
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    started_at = UTCDateTimeAttribute()
    last_message_at = UTCDateTimeAttribute(null=True)
    closed_at = UTCDateTimeAttribute(null=True)
    turn_count = NumberAttribute(default=0)
    # Summary bookkeeping (written by the summary service; shown by the console).
    summary_through = NumberAttribute(default=0)
    summary_state = UnicodeAttribute(null=True)
    summary_task_id = UnicodeAttribute(null=True)
    summary_retries = NumberAttribute(null=True)
    summary_error = UnicodeAttribute(null=True)
    summary_requested_at = UTCDateTimeAttribute(null=True)
    # Global tables: the region (AWS_REGION) the session was started in and is written in, and
    # only there (services.sessions.session_home_check). Absent on sessions started before it
    # was recorded: those may be written anywhere. Not projected into any index.
    home_region = UnicodeAttribute(null=True)
    # by_session_prefix: SIDP#<first 8 of the lower-cased id> / lower-cased id, set at the start
    # and never changed. Nullable only for sessions written before the index (session_keys_backfill).
    gsi9pk = UnicodeAttribute(null=True, attr_name="GSI9PK")
    gsi9sk = UnicodeAttribute(null=True, attr_name="GSI9SK")
    # Per-session usage (turns by model, tokens, bot latency histogram) as compact JSON, kept by
    # the append transaction (services.usage; format in sessions_app/usage.py). Read with META on
    # every append, so small; never projected into an index. Absent on older sessions: unknown.
    usage = UnicodeAttribute(null=True, attr_name="usage")

    gsi1pk = UnicodeAttribute(attr_name="GSI1PK")
    gsi1sk = UnicodeAttribute(attr_name="GSI1SK")
    gsi2pk = UnicodeAttribute(attr_name="GSI2PK")
    gsi2sk = UnicodeAttribute(attr_name="GSI2SK")
    # Nullable only for sessions written before the by_channel index (see session_keys_backfill).
    gsi5pk = UnicodeAttribute(null=True, attr_name="GSI5PK")
    gsi5sk = UnicodeAttribute(null=True, attr_name="GSI5SK")
    gsi3pk = UnicodeAttribute(null=True, attr_name="GSI3PK")
    gsi3sk = UnicodeAttribute(null=True, attr_name="GSI3SK")
    # summary_due index: DUE#<shard> / time the unsummarised stretch began (see SummaryDueIndex).
    summary_due_pk = UnicodeAttribute(null=True, attr_name="GSI4PK")
    summary_due_sk = UnicodeAttribute(null=True, attr_name="GSI4SK")
    # Hand-off to a human (services.handoff). ``owner`` is the guard of the bot's appends: an
    # assistant turn is written only while it is absent (the append transaction's condition).
    handoff_reason = UnicodeAttribute(null=True)
    handoff_note = UnicodeAttribute(null=True)
    handoff_at = UTCDateTimeAttribute(null=True)  # when the bot asked for a human
    owner = UnicodeAttribute(null=True)  # the staff member's username
    owner_name = UnicodeAttribute(null=True)  # shown to the customer and in the console
    owner_since = UTCDateTimeAttribute(null=True)
    owner_active_at = UTCDateTimeAttribute(null=True)  # take-over or last staff reply: the idle clock
    gsi6pk = UnicodeAttribute(null=True, attr_name="GSI6PK")
    gsi6sk = UnicodeAttribute(null=True, attr_name="GSI6SK")
    gsi7pk = UnicodeAttribute(null=True, attr_name="GSI7PK")
    gsi7sk = UnicodeAttribute(null=True, attr_name="GSI7SK")
    # by_summary_state: SUMSTATE#<state>#<shard> / started sort key. Nullable only for sessions
    # written before the index (see session_keys_backfill).
    gsi8pk = UnicodeAttribute(null=True, attr_name="GSI8PK")
    gsi8sk = UnicodeAttribute(null=True, attr_name="GSI8SK")

    @property
    def writable_here(self) -> bool:
        """Whether this deployment's region may write the session: it is the session's home
        region, or the session has none recorded."""
        return not self.home_region or self.home_region == settings.AWS_REGION

    by_customer = ByCustomerIndex()
    by_day = ByDayIndex()
    by_channel = ByChannelIndex()
    by_status = ByStatusIndex()
    summary_due = SummaryDueIndex()
    handoff_queue = HandoffQueueIndex()
    by_session_prefix = SessionPrefixIndex()
    by_owner = ByOwnerIndex()
    by_summary_state = BySummaryStateIndex()


class Turn(ChatItem, discriminator="turn"):
    seq = NumberAttribute()
    role = UnicodeAttribute()
    text = CompressedTextAttribute()
    created_at = UTCDateTimeAttribute()
    client_msg_id = UnicodeAttribute()
    model = UnicodeAttribute(null=True)
    latency_ms = NumberAttribute(null=True)
    tokens_in = NumberAttribute(null=True)
    tokens_out = NumberAttribute(null=True)
    # Staff replies (role "agent"): who wrote it, and its delivery to the bot runtime's webhook.
    author = UnicodeAttribute(null=True)
    delivery_state = UnicodeAttribute(null=True)  # pending, delivered, failed
    delivery_attempts = NumberAttribute(null=True)
    delivery_error = UnicodeAttribute(null=True)
    delivered_at = UTCDateTimeAttribute(null=True)


class Summary(ChatItem, discriminator="summary"):
    through_seq = NumberAttribute()
    text = CompressedTextAttribute()
    generator = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    task_id = UnicodeAttribute(null=True)


class ClientMessageMarker(ChatItem, discriminator="msgid"):
    """Written in the same transaction as a turn: a second append with the same client message
    id fails its ``attribute_not_exists`` condition, and the marker tells which turn to return."""

    seq = NumberAttribute()


class CustomerEntry(ChatItem, discriminator="customer"):
    """The customer directory: one item per customer id (``CUSTOMER#<id>`` / ``CUSTOMER``), so
    customers can be found by a case-insensitive prefix (``by_customer_prefix``). Written by
    ``services.sessions.customer_directory_record`` before each session's META: an idempotent
    UpdateItem that only moves ``ttl`` (and ``newest_started_at``) forward, so the entry expires
    no earlier than the customer's newest session. Deleted by the customer's privacy delete."""

    customer_id = UnicodeAttribute()
    newest_started_at = UTCDateTimeAttribute(null=True)
    gsi10pk = UnicodeAttribute(null=True, attr_name="GSI10PK")
    gsi10sk = UnicodeAttribute(null=True, attr_name="GSI10SK")

    by_customer_prefix = CustomerPrefixIndex()
