"""Structured logs and the request id: what the API's requests, and the Celery tasks they
enqueue, actually log.

Lines are captured by a handler with the product's own formatter (JSON) on the root logger, where
every logger of the process ends; the requests are real (Django's test client, the API keys in the
test database, DynamoDB Local, Redis) and so is the worker (Celery's in-process thread worker on
the test broker).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import structlog
from django.test import Client

from mangaassist.celery import app as celery_app
from sessions_app.observability.logs import bind, current_request_id, formatter
from sessions_app.services.summaries import TASK_NAME
from tests.api.conftest import API, api, read_key, start_session, write_key  # noqa: F401  (fixtures used here)
from tests.fixtures.celery_workers import meta_of, summaries_of, wait_for
from tests.test_settings import PRODUCTION

ROOT = Path(__file__).resolve().parents[2]
GENERATED = re.compile(r"[0-9a-f]{32}")


class Lines:
    """What the process logged while it was attached, as the JSON objects the formatter made."""

    def __init__(self, *, only_this_thread: bool = False) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter(json=True))
        if only_this_thread:
            # The test client serves a request in the test's own thread: this keeps out whatever
            # another thread of the test process (an earlier test's server, a pool) logs meanwhile.
            ident = threading.get_ident()
            self.handler.addFilter(lambda record: record.thread == ident)

    def raw(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.raw().splitlines()]

    def of_task(self, name: str) -> list[dict]:
        return [line for line in self.all() if line.get("task_name") == name]


def _capture(level: int, **kwargs) -> Iterator[Lines]:
    root = logging.getLogger()
    lines = Lines(**kwargs)
    previous = root.level
    root.addHandler(lines.handler)
    root.setLevel(level)
    try:
        yield lines
    finally:
        root.removeHandler(lines.handler)
        root.setLevel(previous)


@pytest.fixture
def request_lines() -> Iterator[Lines]:
    """INFO and up, from the test's thread only (where the test client runs the request)."""
    yield from _capture(logging.INFO, only_this_thread=True)


@pytest.fixture
def process_lines() -> Iterator[Lines]:
    """INFO and up, from every thread: the requests' and the in-process worker's."""
    yield from _capture(logging.INFO)


def _headers(key: str, request_id: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **({"X-Request-ID": request_id} if request_id else {})}


def _missing_session(client: Client, key: str, request_id: str | None):
    # A session that does not exist: a 404, which Django logs ("Not Found: …") once the
    # middleware chain has returned it.
    return client.get(f"{API}/sessions/{uuid.uuid4().hex}", headers=_headers(key, request_id))


# --- the request id of a request ----------------------------------------------------------------------

def test_the_callers_request_id_is_answered_and_on_every_line_of_the_request(ddb, redis_client, read_key,
                                                                              request_lines):
    response = _missing_session(Client(), read_key, "abc-123")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "abc-123"
    lines = request_lines.all()
    assert any(line["logger"] == "django.request" and line["event"].startswith("Not Found") for line in lines), lines
    assert {line.get("request_id") for line in lines} == {"abc-123"}
    session_id = response.wsgi_request.path.rsplit("/", 1)[1]
    assert all(line["session_id"] == session_id and line["method"] == "GET" for line in lines), lines
    assert response.wsgi_request.request_id == "abc-123"
    # The request's fields end with it: nothing later in this thread is labelled with them.
    assert current_request_id() is None and structlog.contextvars.get_contextvars() == {}


# A newline would let a caller forge a line of the console format, or a field of its own.
@pytest.mark.parametrize("sent", [None, "", "not an id", "a" * 129, "abc-123\nforged=1", "ü-123"],
                         ids=["missing", "empty", "spaces", "too-long", "newline", "non-ascii"])
def test_a_missing_or_insane_request_id_is_replaced_by_a_generated_one(ddb, redis_client, read_key, request_lines,
                                                                       sent):
    client = Client()
    # In the WSGI environ, as a server hands the header over.
    response = client.get(f"{API}/sessions/{uuid.uuid4().hex}", headers={"Authorization": f"Bearer {read_key}"},
                          **({"HTTP_X_REQUEST_ID": sent} if sent is not None else {}))
    other = _missing_session(client, read_key, None)

    answered = response["X-Request-ID"]
    assert GENERATED.fullmatch(answered) and answered != sent
    assert GENERATED.fullmatch(other["X-Request-ID"]) and other["X-Request-ID"] != answered
    ids = [line["request_id"] for line in request_lines.all()]
    assert ids and set(ids) == {answered, other["X-Request-ID"]}
    assert ids.index(other["X-Request-ID"]) > ids.index(answered)


def test_a_sane_request_id_of_every_allowed_character_is_kept(ddb, redis_client, read_key):
    sent = "Root-1-5f84c7a1:ABC_def.789-" + "x" * 100  # letters, digits and . _ : - only; 128 of them
    assert len(sent) == 128
    assert _missing_session(Client(), read_key, sent)["X-Request-ID"] == sent


# --- into the Celery task -------------------------------------------------------------------------------

def _append_through_the_api(api, settings, *, request_id: str, text: str) -> str:
    """Start a session, then append one turn with ``request_id``: with a summary due every turn,
    the append enqueues a summary task. Returns the session id once the worker has written it."""
    settings.SUMMARY_EVERY_N_TURNS = 1
    session_id = start_session(api, customer_id="cust-logs")
    response = api.client.post(f"{API}/sessions/{session_id}/turns",
                               json.dumps({"role": "user", "text": text, "client_msg_id": uuid.uuid4().hex}),
                               content_type="application/json", headers=_headers(api.key, request_id))
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == request_id
    wait_for(lambda: int(meta_of(session_id).summary_through or 0) == 1, what="the summary the append enqueued")
    return session_id


def test_lines_of_one_request_share_its_id_including_the_celery_task_it_enqueued(api, worker, settings, process_lines):
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    session_id = _append_through_the_api(api, settings, request_id=request_id, text="Do you have One Piece vol. 3?")
    worker.wait_idle()

    lines = process_lines.all()
    requested = [line for line in lines if line["event"].startswith(f"summary of {session_id} requested")]
    assert len(requested) == 1, lines
    assert requested[0]["request_id"] == request_id
    # Bound by the services once the session's META was read: the customer, not only the URL's id.
    assert (requested[0]["session_id"], requested[0]["customer_id"]) == (session_id, "cust-logs")

    task = process_lines.of_task(TASK_NAME)
    assert any(line["event"] == "task started" and line["level"] == "info" for line in task), lines
    assert {line["request_id"] for line in task} == {request_id}
    assert len({line["task_id"] for line in task}) == 1
    # The worker's own lines (connecting, receiving) are no request's.
    assert all("request_id" not in line for line in lines if line["logger"].startswith("celery.worker"))


def test_a_tasks_lines_carry_no_request_id_when_nothing_enqueued_it_in_a_request(worker, process_lines):
    structlog.contextvars.clear_contextvars()  # published from no request: beat's way
    celery_app.send_task("sessions_app.handoff_lapse_sweep", retry=False)
    wait_for(lambda: process_lines.of_task("sessions_app.handoff_lapse_sweep"), what="the sweep to start")
    worker.wait_idle()
    task = process_lines.of_task("sessions_app.handoff_lapse_sweep")
    assert task and all("request_id" not in line for line in task), task


def test_a_task_run_inline_logs_under_the_callers_request_id_and_leaves_its_context_alone(ddb, process_lines):
    sweep = celery_app.tasks["sessions_app.handoff_lapse_sweep"]
    with structlog.contextvars.bound_contextvars(request_id="r-inline", session_id="s-1"):
        sweep.apply()  # what CELERY_TASK_ALWAYS_EAGER does with every publish
        after = structlog.contextvars.get_contextvars()
    task = process_lines.of_task("sessions_app.handoff_lapse_sweep")
    assert task and {line["request_id"] for line in task} == {"r-inline"}
    assert all("session_id" not in line for line in task)  # the task's own context, not the caller's
    assert after == {"request_id": "r-inline", "session_id": "s-1"}


# --- no chat text -----------------------------------------------------------------------------------------

def test_no_line_of_an_append_or_its_summary_task_contains_the_turns_text(api, worker, settings, process_lines):
    logging.getLogger().setLevel(logging.DEBUG)  # everything anyone logs, not just INFO
    marker = f"marker-{uuid.uuid4().hex}"
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    session_id = _append_through_the_api(api, settings, request_id=request_id, text=f"Do you have {marker}, vol. 3?")
    worker.wait_idle()
    assert marker in summaries_of(session_id)[-1].text  # the summary quotes it: its lines were a chance to leak it

    lines = process_lines.all()
    # The check proves something only if both the request and its task logged.
    assert [line for line in lines if line.get("request_id") == request_id and "task_name" not in line]
    assert process_lines.of_task(TASK_NAME)
    assert marker not in process_lines.raw()


# --- the format -------------------------------------------------------------------------------------------

def test_a_json_line_has_the_timestamp_level_logger_event_and_the_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(json=True))
    logger = logging.getLogger("tests.observability.json")
    logger.addHandler(handler)
    try:
        with structlog.contextvars.bound_contextvars(request_id="r-1", session_id="s-1"):
            logger.warning("append to %s lost attempt %d", "s-1", 2)
            try:
                raise ValueError("boom")
            except ValueError:
                secret = "the customer's words"  # noqa: F841 — a local that must not be rendered
                logger.exception("it failed")
    finally:
        logger.removeHandler(handler)

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {"timestamp", "level", "logger", "event", "request_id"} <= set(first)
    assert (first["level"], first["logger"], first["event"]) == ("warning", "tests.observability.json",
                                                                 "append to s-1 lost attempt 2")
    assert (first["request_id"], first["session_id"]) == ("r-1", "s-1")
    assert first["timestamp"].endswith("Z") and datetime.fromisoformat(first["timestamp"])
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]
    assert "the customer's words" not in stream.getvalue()


def _environment(tmp_path: Path, **env) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MANGAASSIST_", "LOG_"))}
    return base | {"MANGAASSIST_LOCAL_DIR": str(tmp_path)} | env


def _log_one_line(tmp_path: Path, **env) -> str:
    """A process started the way production starts one (Django set up from the settings), that
    logs one line: its stderr."""
    code = ("import logging, structlog; structlog.contextvars.bind_contextvars(request_id='r-42'); "
            "logging.getLogger('sessions_app.probe').warning('hello %s', 'world')")
    result = subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT,
                            env=_environment(tmp_path, **env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_production_logs_json_lines(tmp_path):
    lines = [json.loads(line) for line in _log_one_line(tmp_path, **PRODUCTION).splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line.get("event") == "hello world"]
    assert (line["level"], line["logger"], line["request_id"]) == ("warning", "sessions_app.probe", "r-42")
    assert "timestamp" in line


def test_local_logs_are_readable_text_unless_json_is_asked_for(tmp_path):
    text = _log_one_line(tmp_path)
    [line] = [line for line in text.splitlines() if "hello world" in line]
    assert not line.startswith("{") and "[warning" in line and "request_id=r-42" in line
    assert '"event": "hello world"' in _log_one_line(tmp_path, LOG_FORMAT="json")


def test_a_log_format_that_does_not_exist_fails_at_start(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT,
                            env=_environment(tmp_path, LOG_FORMAT="xml"), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "LOG_FORMAT" in result.stderr


# --- bind ---------------------------------------------------------------------------------------------------

def test_bind_accepts_identifiers_only():
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        with pytest.raises(TypeError, match="text"):
            bind(session_id="s-1", text="hello")
        bind(customer_id="c-1", connection_id=None)
        assert structlog.contextvars.get_contextvars() == {"request_id": "r-1", "customer_id": "c-1"}
    structlog.contextvars.clear_contextvars()


def test_bind_outside_a_request_or_task_binds_nothing():
    structlog.contextvars.clear_contextvars()
    bind(session_id="s-1", customer_id="c-1")  # a management command starting sessions
    assert structlog.contextvars.get_contextvars() == {}
