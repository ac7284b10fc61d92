"""The API-key admin: adding generates a key shown once; the hash never appears; revoke action."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages

from sessions_app.models import ApiKey
from sessions_app.selectors.api_keys import api_key_authenticate
from sessions_app.services.api_keys import api_key_create


@pytest.fixture
def admin_client(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_adding_a_key_shows_the_raw_key_once_and_stores_only_the_hash(admin_client):
    response = admin_client.post("/admin/sessions_app/apikey/add/", {"name": "runtime", "scope": "write"}, follow=True)
    assert response.status_code == 200
    texts = [str(m) for m in get_messages(response.wsgi_request)] or [m.message for m in response.context["messages"]]
    raw = re.search(r"\b(ma_[A-Za-z0-9_-]+)", " ".join(texts)).group(1)
    api_key = api_key_authenticate(raw_key=raw)
    assert api_key is not None and api_key.name == "runtime" and api_key.scope == "write"
    assert ApiKey.objects.count() == 1

    change_page = admin_client.get(f"/admin/sessions_app/apikey/{api_key.pk}/change/").content.decode()
    assert api_key.key_hash not in change_page and raw not in change_page
    list_page = admin_client.get("/admin/sessions_app/apikey/").content.decode()
    assert api_key.key_hash not in list_page and raw not in list_page and api_key.prefix in list_page


def test_revoke_action(admin_client):
    api_key, raw = api_key_create(name="old", scope="read")
    response = admin_client.post("/admin/sessions_app/apikey/", {"action": "revoke_selected", "_selected_action": [api_key.pk]}, follow=True)
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert api_key_authenticate(raw_key=raw) is None


def test_search_by_name(admin_client):
    api_key_create(name="runtime-eu", scope="read")
    api_key_create(name="analytics", scope="read")
    page = admin_client.get("/admin/sessions_app/apikey/", {"q": "runtime"}).content.decode()
    assert "runtime-eu" in page and "analytics" not in page
