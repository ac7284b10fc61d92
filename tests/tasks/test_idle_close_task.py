"""The idle close as beat runs it: the task is on the schedule, and a real worker (on the real Redis
broker) closes an idle session and then writes its final summary, as for any close."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings as django_settings

from mangaassist.celery import app as celery_app
from sessions_app.clock import utcnow
from sessions_app.models import AuditLog, SessionMeta, SessionStatus
from sessions_app.tasks import sessions_idle_close
from tests.builders import make_session
from tests.fixtures.celery_workers import meta_of, summaries_of, wait_for

TASK = "sessions_app.sessions_idle_close"


def test_the_sweep_is_on_the_beat_schedule_every_five_minutes():
    entries = [e for e in django_settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == TASK]
    assert len(entries) == 1
    assert entries[0]["schedule"] == 300.0 and entries[0]["options"]["expires"] <= 300.0
    assert celery_app.tasks[TASK].name == sessions_idle_close.name == TASK  # registered under the scheduled name


def test_a_worker_closes_the_idle_session_and_summarises_it(worker, transactional_db, settings):
    settings.SESSION_IDLE_CLOSE_MINUTES = 60
    idle = make_session(started_at=utcnow() - timedelta(hours=3), turns=4)  # written without triggers
    meta_of(idle.session_id).update(actions=[SessionMeta.last_message_at.set(utcnow() - timedelta(minutes=90))])
    recent = make_session(started_at=utcnow() - timedelta(hours=3), turns=2)

    result = celery_app.send_task(TASK)
    wait_for(lambda: int(meta_of(idle.session_id).summary_through or 0) == 4, what="the idle session's final summary")
    worker.wait_idle()

    assert result.id
    assert meta_of(idle.session_id).status == SessionStatus.CLOSED
    assert meta_of(recent.session_id).status == SessionStatus.ACTIVE
    assert [int(s.through_seq) for s in summaries_of(idle.session_id)] == [4]
    assert AuditLog.objects.get(session_id=idle.session_id).detail["reason"] == "idle"


def test_the_task_reports_what_it_did_and_is_idempotent(ddb, redis_client, broker, db, settings):
    settings.SESSION_IDLE_CLOSE_MINUTES = 60
    make_session(started_at=utcnow() - timedelta(hours=2))
    assert sessions_idle_close.apply().get() == {"closed": 1, "moved": 0, "owned": 0, "more": False}
    assert sessions_idle_close.apply().get() == {"closed": 0, "moved": 0, "owned": 0, "more": False}
