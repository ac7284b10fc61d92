"""The CSV export defuses every cell a spreadsheet would run as a formula, in every column, and
keeps numbers numbers. The console's and the admin's export tests reuse ``hostile_session`` and
``csv_rows_defused`` (tests/dashboard/test_actions.py, tests/admin/test_chat_sessions.py)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from sessions_app import keys, services
from sessions_app.models import SessionMeta, Turn
from sessions_app.selectors.export import CSV_COLUMNS, export_csv_chunks
from sessions_app.selectors.sessions import session_get
from sessions_app.services.summaries import summary_write

# What reached the exports raw: a formula, arithmetic that reads as a formula, a function call, a
# formula behind a tab (some spreadsheets strip it), and the other starts a spreadsheet acts on.
HOSTILE = ('=HYPERLINK("http://evil.example","x")', "-1+2", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=3", "+1", "\r=4",
           "\n=5")
NUMERIC_COLUMNS = ("seq", "latency_ms", "tokens_in", "tokens_out")
# Every other column is text; which hostile value each one is given:
STORED_HOSTILE = {"customer_id": HOSTILE[0], "channel": HOSTILE[1], "locale": HOSTILE[2], "status": HOSTILE[3],
                  "role": HOSTILE[4]}


def hostile_session(*, customer_id: str = "cust-h", started_at: datetime | None = None) -> SessionMeta:
    """A session with a hostile value in every text column of the CSV export.

    Through the services, as the API takes them: tags, and each turn's ``model`` and text (one
    turn per hostile value), plus a summary. The ids and enums (customer id, channel, locale,
    status, role) are validated on the way in, so those are written to the stored items
    directly — as an item stored before a check, or by another writer, would hold them; the
    listing indexes keep their keys, so every export still finds the session. The session id is
    a key and cannot carry one. Returns META as stored."""
    meta, _ = services.session_start(customer_id=customer_id, channel="web", tags=list(HOSTILE[:5]), started_at=started_at)
    for n, value in enumerate(HOSTILE, start=1):
        services.turn_write(session_id=meta.session_id, role="user", text=value, client_msg_id=f"h-{n}", model=value,
                            latency_ms=12.5, tokens_in=n, tokens_out=40)
        Turn(meta.pk, keys.turn_sk(n)).update(actions=[Turn.role.set(STORED_HOSTILE["role"])])
    summary_write(session_id=meta.session_id, through_seq=len(HOSTILE), text=HOSTILE[0], generator=HOSTILE[1],
                  expires_at=meta.expires_at)
    SessionMeta(meta.pk, keys.META_SK).update(actions=[
        getattr(SessionMeta, column).set(value) for column, value in STORED_HOSTILE.items() if column != "role"])
    return session_get(session_id=meta.session_id, consistent=True)


def csv_rows_defused(body: bytes, *, session_id: str) -> list[dict]:
    """Parse an export (it starts with Excel's BOM) and check the rows of ``session_id``: every
    text cell holds its value behind a quote, every number is a plain number. Returns them."""
    assert body.startswith("\ufeff".encode())
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    assert reader.fieldnames == CSV_COLUMNS
    rows = [row for row in reader if row["session_id"] == session_id]
    assert [row["seq"] for row in rows] == [str(n) for n in range(1, len(HOSTILE) + 1)]
    for row, value in zip(rows, HOSTILE):
        assert (row["text"], row["model"]) == ("'" + value, "'" + value)
        assert {column: row[column] for column in STORED_HOSTILE} == {c: "'" + v for c, v in STORED_HOSTILE.items()}
        assert (row["latency_ms"], row["tokens_in"], row["tokens_out"]) == ("12.5", row["seq"], "40")
        assert row["started_at"][:1].isdigit() and row["created_at"][:1].isdigit()
    return rows


def test_every_text_cell_is_defused_and_numbers_stay_numbers(ddb):
    meta = hostile_session()
    rows = csv_rows_defused(b"".join(export_csv_chunks(sessions=[meta])), session_id=meta.session_id)
    assert len(rows) == len(HOSTILE)
    # Nothing else in the file starts like a formula either (the header, any column added later).
    for row in rows:
        for column, cell in row.items():
            if column not in NUMERIC_COLUMNS:
                assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r", "\n"), (column, cell)


def test_ordinary_values_are_exported_unchanged(ddb):
    meta, _ = services.session_start(customer_id="cust-1", channel="line", locale="ja")
    services.turn_write(session_id=meta.session_id, role="assistant", text="在庫あります (3 - 5 days)",
                        client_msg_id="m-1", model="claude-3-haiku", latency_ms=0, tokens_in=0, tokens_out=7)
    services.turn_write(session_id=meta.session_id, role="user", text="ok", client_msg_id="m-2")
    body = b"".join(export_csv_chunks(sessions=[session_get(session_id=meta.session_id, consistent=True)]))
    first, second = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    assert (first["customer_id"], first["channel"], first["locale"], first["status"], first["role"]) == (
        "cust-1", "line", "ja", "active", "assistant")
    assert (first["text"], first["model"]) == ("在庫あります (3 - 5 days)", "claude-3-haiku")
    assert (first["seq"], first["latency_ms"], first["tokens_in"], first["tokens_out"]) == ("1", "0", "0", "7")
    assert (second["model"], second["latency_ms"], second["tokens_in"], second["tokens_out"]) == ("", "", "", "")
