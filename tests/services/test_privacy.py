"""Privacy deletes at the service level: what they leave behind in the task queue."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from sessions_app.services import session_close, summaries
from sessions_app.services.privacy import privacy_delete_execute
from tests.builders import make_session


@pytest.fixture
def published(monkeypatch):
    tasks = []
    monkeypatch.setattr(summaries, "task_publish", lambda *, name, args, task_id: tasks.append((name, args)))
    return tasks


@pytest.mark.django_db
def test_a_privacy_delete_requests_no_final_summary_of_what_it_erases(ddb, redis_client, published):
    actor = get_user_model().objects.create_user("dpo", is_staff=True)
    meta = make_session(turns=3)
    receipt = privacy_delete_execute(actor=actor, session_id=meta.session_id, confirm=meta.session_id)
    assert receipt.complete
    assert published == []


def test_an_ordinary_close_still_requests_the_final_summary(ddb, redis_client, published):
    meta = make_session(turns=3)
    session_close(session_id=meta.session_id)
    assert published == [(summaries.TASK_NAME, [meta.session_id])]
