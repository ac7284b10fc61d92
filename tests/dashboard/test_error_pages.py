"""Error pages are never dead ends: 400, 403, 404 and 500 in the console's layout with its
navigation and log-out, the "no console role yet" page for an account without a staff group, and
never Django's debug pages with DEBUG off (handler400/403/404/500 in mangaassist/urls.py)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from mangaassist import urls as project_urls
from tests.fixtures.staff import staff_user

NO_ROLE = "Your account has no console role yet: ask a Supervisor to add you to Viewer, Agent or Supervisor"
LOGOUT_FORM = re.compile(
    r'<form method="post" action="/accounts/logout/"[^>]*>\s*'
    r'<input type="hidden" name="csrfmiddlewaretoken" value="[^"]+">'
    r'<input type="hidden" name="next" value="/accounts/login/">')


@pytest.fixture(autouse=True)
def production_like(settings):
    settings.DEBUG = False


def _body(response) -> str:
    return response.content.decode()


def _console_layout(body: str) -> None:
    assert '<header class="topbar">' in body and "/static/dashboard/console.css" in body
    assert "Traceback" not in body and "technical_500" not in body and "Django tried these URL patterns" not in body


def test_the_handlers_are_the_consoles():
    assert project_urls.handler400 == "dashboard.access.bad_request"
    assert project_urls.handler403 == "dashboard.access.permission_denied"
    assert project_urls.handler404 == "dashboard.access.page_not_found"
    assert project_urls.handler500 == "dashboard.access.server_error"


def test_an_account_without_a_group_lands_on_the_no_role_page_with_log_out(console, client):
    client.force_login(staff_user(username="newbie", group=None))
    response = client.get(reverse("dashboard:overview"))
    assert response.status_code == 403
    body = _body(response)
    _console_layout(body)
    assert NO_ROLE in body and 'id="no-group"' in body
    assert LOGOUT_FORM.search(body), "no log-out form"
    # Nothing to click that would only lead here again, nothing it may not read.
    assert 'href="/sessions/"' not in body and 'id="nav-handoffs"' not in body and "topbar-q" not in body
    for url in (reverse("dashboard:session_list"), reverse("dashboard:handoff_queue"), reverse("dashboard:search")):
        page = client.get(url)
        assert page.status_code == 403 and NO_ROLE in _body(page)


def test_a_non_staff_account_is_told_so_too(console, client):
    client.force_login(staff_user(username="outsider", group="Viewer", is_staff=False))
    body = _body(client.get(reverse("dashboard:overview")))
    assert NO_ROLE in body and "which is not a staff account" in body and LOGOUT_FORM.search(body)


def test_the_no_role_page_refreshing_a_panel_is_the_message_alone(console, client):
    client.force_login(staff_user(username="newbie", group=None))
    response = client.get(reverse("dashboard:overview_metrics"), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    body = _body(response)
    assert "<html" not in body and NO_ROLE in body


def test_logging_out_from_the_no_role_page_ends_on_the_login_page(console):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user(username="newbie", group=None))
    body = _body(client.get(reverse("dashboard:overview")))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1)
    response = client.post(reverse("logout"), {"csrfmiddlewaretoken": token, "next": reverse("login")})
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert client.get(reverse("dashboard:overview"))["Location"].startswith(reverse("login"))


def test_403_for_a_role_that_is_not_enough_has_navigation_and_log_out(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:infrastructure"))
    assert response.status_code == 403
    body = _body(response)
    _console_layout(body)
    assert "You can't open this page (403)" in body and "It is for Supervisors" in body
    assert NO_ROLE not in body
    assert 'class="error-nav"' in body and 'href="/sessions/"' in body and LOGOUT_FORM.search(body)


def test_403_still_renders_when_its_layout_cannot_read_dynamodb(db, viewer_client, settings):
    """No table (the page's "needs a human" count fails): the page without the user's context,
    still with its ways on, rather than a 500 for a 403."""
    settings.DYNAMODB_TABLE = "no-such-table-for-this-test"
    response = viewer_client.get(reverse("dashboard:infrastructure"))
    assert response.status_code == 403
    body = _body(response)
    assert "You can't open this page (403)" in body and 'class="error-nav"' in body and LOGOUT_FORM.search(body)


def test_404_in_the_console_layout(console, viewer_client):
    response = viewer_client.get("/no-such-page/")
    assert response.status_code == 404
    body = _body(response)
    _console_layout(body)
    assert "Nothing here (404)" in body and "<code>/no-such-page/</code>" in body
    assert 'href="/sessions/"' in body and LOGOUT_FORM.search(body)


def test_404_for_anyone_offers_the_login_page(console, client):
    body = _body(client.get("/no-such-page/"))
    assert "Nothing here (404)" in body and 'href="/accounts/login/"' in body and "logout" not in body


def test_a_missing_session_is_the_consoles_404_with_a_way_on(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:session_detail", args=["no-such-session"]))
    assert response.status_code == 404
    body = _body(response)
    assert 'class="error-nav"' in body and LOGOUT_FORM.search(body)


def test_400_for_a_host_not_allowed_is_the_console_page(console, client):
    response = client.get("/sessions/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    body = _body(response)
    _console_layout(body)
    assert "That request could not be understood (400)" in body and 'class="error-nav"' in body


def test_400_under_the_api_keeps_the_api_shape(console, client):
    response = client.get("/api/v1/sessions", HTTP_HOST="evil.example")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


def test_an_invalid_console_filter_is_400_with_a_way_on(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:session_list_rows"), {"day_from": "not-a-day"})
    assert response.status_code == 400
    assert 'class="error-nav"' in _body(response)


def test_500_is_the_console_page_not_a_traceback(console, viewer, monkeypatch):
    from dashboard import views

    def broken():
        raise RuntimeError("the overview's numbers broke")

    monkeypatch.setattr(views, "overview_metrics", broken)
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    response = client.get(reverse("dashboard:overview"))
    assert response.status_code == 500
    body = _body(response)
    _console_layout(body)
    assert "Something went wrong on our side (500)" in body
    assert "the overview's numbers broke" not in body and "RuntimeError" not in body
    assert 'href="/sessions/"' in body and LOGOUT_FORM.search(body)


def test_500_survives_a_template_that_cannot_render(console, viewer, monkeypatch):
    from dashboard import access, views

    def broken(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(views, "overview_metrics", broken)
    monkeypatch.setattr(access.loader, "get_template", broken)
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    response = client.get(reverse("dashboard:overview"))
    assert response.status_code == 500
    assert "Something went wrong on our side (500)" in _body(response) and 'href="/accounts/login/"' in _body(response)


def test_the_favicon_is_linked_and_favicon_ico_is_no_404(console, viewer_client, client):
    body = _body(viewer_client.get(reverse("dashboard:overview")))
    assert '<link rel="icon" href="/static/dashboard/favicon.svg" type="image/svg+xml">' in body
    assert finders.find("dashboard/favicon.svg")
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/dashboard/favicon.svg"
