from datetime import date

from django.core.management import call_command

from sessions_app import dynamo, keys, selectors, services
from sessions_app.models import SessionMeta
from sessions_app.services import session_keys_backfill, table_delete
from sessions_app.services.table import _desired_schema
from tests.builders import at, make_session
from tests.fixtures.read_paths import ddb  # noqa: F401  (each test runs direct and through DAX)

DAY = date(2026, 11, 19)


def _channel_ids(channel="web"):
    page = selectors.session_list(channel=channel, day_from=DAY, day_to=DAY, limit=200)
    return {m.session_id for m in page.sessions}


def _as_before_the_index(metas):
    """Strip the by_channel keys, as on sessions written before the index existed."""
    for meta in metas:
        SessionMeta(keys.session_pk(meta.session_id), keys.META_SK).update(
            actions=[SessionMeta.gsi5pk.remove(), SessionMeta.gsi5sk.remove()])


def test_backfill_puts_older_sessions_into_the_channel_index_once(ddb):
    metas = [make_session(session_id=f"old-{n}", channel=("web", "app")[n % 2], started_at=at(DAY.isoformat(), minute=n))
             for n in range(12)]
    _as_before_the_index(metas[:8])
    web = {m.session_id for m in metas if m.channel == "web"}
    assert _channel_ids() == {m.session_id for m in metas[8:] if m.channel == "web"}

    report = session_keys_backfill(day_from=DAY, day_to=DAY)
    assert (report.days, report.sessions_seen, report.sessions_updated) == (1, 12, 8)
    assert _channel_ids() == web
    assert _channel_ids("app") == {m.session_id for m in metas} - web
    # The update touched only the index keys.
    after = SessionMeta.get(keys.session_pk("old-0"), keys.META_SK, consistent_read=True)
    assert (after.customer_id, after.status, after.started_at) == (metas[0].customer_id, "active", metas[0].started_at)

    again = session_keys_backfill(day_from=DAY, day_to=DAY)
    assert (again.sessions_seen, again.sessions_updated) == (12, 0)


def test_dynamodb_init_adds_the_channel_index_to_a_live_table_and_backfills_it(infra, table_name, settings, capsys):
    settings.DYNAMODB_TABLE = table_name
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()
    # The table as deployed before by_channel: every other index, TTL and all.
    schema = _desired_schema()
    schema["GlobalSecondaryIndexes"] = [i for i in schema["GlobalSecondaryIndexes"] if i["IndexName"] != "by_channel"]
    schema["AttributeDefinitions"] = [a for a in schema["AttributeDefinitions"] if not a["AttributeName"].startswith("GSI5")]
    dynamo.connection().client.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST", **schema)
    try:
        metas = [make_session(session_id=f"live-{n}", channel="web", started_at=at(DAY.isoformat(), minute=n))
                 for n in range(5)]
        _as_before_the_index(metas)
        closed = services.session_close(session_id="live-0")[0]
        assert closed.status == "closed"

        call_command("dynamodb_init")
        out = capsys.readouterr().out
        assert "indexes added: by_channel" in out
        assert "index keys backfilled: 5 of 5 sessions" in out
        assert _channel_ids() == {m.session_id for m in metas}
        page = selectors.session_list(channel="web", status="closed", day_from=DAY, day_to=DAY)
        assert [m.session_id for m in page.sessions] == ["live-0"]

        call_command("dynamodb_init")
        assert "nothing changed" in capsys.readouterr().out
    finally:
        table_delete(table_name=table_name)
        dynamo.reset_connections()
