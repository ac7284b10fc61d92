"""Bearer API keys: 401 without a valid key, 403 without the scope, write implies read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from sessions_app.models import ApiKey
from sessions_app.selectors.api_keys import api_key_authenticate
from sessions_app.services.api_keys import api_key_create, api_key_mark_used, api_key_revoke

from .conftest import error_of, start_session


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"])
def test_missing_or_wrong_key_is_401_in_the_error_shape(api, header):
    response = api.client.post("/api/v1/sessions", {"customer_id": "c", "channel": "web"}, content_type="application/json",
                               headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_auth_is_checked_before_the_body_is_parsed(api):
    response = api.post("/sessions", raw="{not json", key="wrong")
    assert response.status_code == 401


def test_read_key_can_read_but_not_write(api, read_key):
    session_id = start_session(api)
    assert api.get(f"/sessions/{session_id}/context", key=read_key).status_code == 200
    assert api.get(f"/sessions/{session_id}", key=read_key).status_code == 200

    response = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "hi", "client_msg_id": "m1"}, key=read_key)
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "forbidden"
    assert "write" in error["message"]
    assert api.post("/sessions", {"customer_id": "c", "channel": "web"}, key=read_key).status_code == 403
    assert api.post(f"/sessions/{session_id}/close", key=read_key).status_code == 403
    assert api.delete("/connections/c1", key=read_key).status_code == 403
    # Nothing was written by the refused calls.
    assert api.get(f"/sessions/{session_id}").json()["status"] == "active"


def test_write_key_implies_read(api):
    session_id = start_session(api)
    assert api.get(f"/sessions/{session_id}/context").status_code == 200


def test_revoked_key_is_401(api, write_key):
    api_key = api_key_authenticate(raw_key=write_key)
    assert api_key_revoke(api_key=api_key) is True
    assert api_key_revoke(api_key=api_key) is False  # idempotent
    response = api.post("/sessions", {"customer_id": "c", "channel": "web"})
    assert response.status_code == 401


def test_only_the_hash_is_stored(db):
    api_key, raw = api_key_create(name="k", scope="read")
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.key_hash == ApiKey.hash_of(raw) != raw
    assert raw.startswith(stored.prefix)
    assert raw not in {getattr(stored, f.attname) for f in ApiKey._meta.fields}


def test_last_used_at_is_written_at_most_once_a_minute(api, write_key):
    from sessions_app.selectors.api_keys import api_key_cache_clear

    api_key = ApiKey.objects.get(key_hash=ApiKey.hash_of(write_key))
    assert api_key.last_used_at is None
    start_session(api)
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None

    start_session(api)  # within the minute: no write
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first

    long_ago = first - timedelta(minutes=5)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=long_ago)
    api_key_cache_clear()  # as in a process that has not seen this key yet
    start_session(api)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at > long_ago


def test_mark_used_twice_at_the_same_instant_writes_once(db):
    api_key, _ = api_key_create(name="k", scope="read")
    now = timezone.now()
    assert api_key_mark_used(api_key=api_key, now=now) is True
    stale_copy = ApiKey.objects.get(pk=api_key.pk)
    stale_copy.last_used_at = None  # another process that read the row before the write
    assert api_key_mark_used(api_key=stale_copy, now=now + timedelta(seconds=10)) is False


def test_create_api_key_command_prints_a_working_key_once(db, capsys):
    call_command("create_api_key", "runtime-eu", "--scope", "write")
    out = capsys.readouterr().out
    raw = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("key:"))
    api_key = api_key_authenticate(raw_key=raw)
    assert api_key is not None and api_key.name == "runtime-eu" and api_key.scope == "write"


def test_create_api_key_command_refuses_a_taken_name_and_a_bad_scope(db):
    call_command("create_api_key", "dup")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_key", "dup")
    with pytest.raises(CommandError):
        call_command("create_api_key", "other", "--scope", "admin")
    assert ApiKey.objects.filter(name="other").count() == 0


def test_a_verified_key_is_cached_but_revocation_takes_effect_at_once(api, write_key, django_assert_num_queries):
    from sessions_app.models import ApiKey
    from sessions_app.selectors.api_keys import api_key_authenticate, api_key_cache_clear
    from sessions_app.services.api_keys import api_key_revoke

    api_key_cache_clear()
    assert api_key_authenticate(raw_key=write_key) is not None
    with django_assert_num_queries(0):
        assert api_key_authenticate(raw_key=write_key) is not None
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=api_key_authenticate(raw_key=write_key).key_hash))
    assert api_key_authenticate(raw_key=write_key) is None


def test_with_the_cache_off_every_request_checks_the_database(api, write_key, settings):
    from sessions_app.models import ApiKey
    from sessions_app.selectors.api_keys import api_key_authenticate

    settings.API_KEY_CACHE_SECONDS = 0
    assert api_key_authenticate(raw_key=write_key) is not None
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")  # revoked behind the service's back
    assert api_key_authenticate(raw_key=write_key) is None
