from datetime import date

from sessions_app import keys, selectors
from sessions_app.demo import demo_sessions
from sessions_app.models import Turn
from sessions_app.services.bulk import sessions_bulk_load
from tests.builders import at


def test_bulk_loaded_demo_sessions_are_complete_and_listed(ddb):
    specs = demo_sessions(count=12, now=at("2026-11-20", 600))
    done, turns = sessions_bulk_load(specs=specs, threads=4)
    assert done == 12 and turns == sum(len(s.turns) for s in specs)
    page = selectors.session_list(day_from=date(2026, 11, 1), day_to=date(2026, 11, 20), limit=50)
    assert len(page.sessions) == 12
    ja = [m for m in page.sessions if m.locale == "ja"]
    for meta in page.sessions:
        stored = list(Turn.query(meta.pk, Turn.sk.startswith(keys.TURN_PREFIX), consistent_read=True))
        assert [t.seq for t in stored] == list(range(1, meta.turn_count + 1))
        assert (meta.status == "closed") == (meta.gsi3pk is None)
    if ja:
        ctx = selectors.context_read(session_id=ja[0].session_id, turns=2)
        assert any("巻" in t.text for t in ctx.turns) or any("\u3040" <= ch <= "\u30ff" for t in ctx.turns for ch in t.text)


def test_demo_data_meets_the_demo_size():
    specs = demo_sessions(count=260, now=at("2026-11-20"))
    assert sum(len(s.turns) for s in specs) >= 3000
    assert len({s.customer_id for s in specs}) >= 10
    assert {s.status for s in specs} == {"active", "handed_off", "closed"}
    assert {s.locale for s in specs} == {"en", "ja"}
    assert len({s.channel for s in specs}) >= 3
    assert len({s.started_at.date() for s in specs}) >= 5
