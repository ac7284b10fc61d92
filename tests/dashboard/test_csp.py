"""Content-Security-Policy (django-csp): every page the console and the admin serve carries a
policy that runs only scripts from this origin, and no template relies on inline script, inline
event handlers or style attributes (which that policy refuses). The browser tests (tests/e2e)
check that nothing on the real pages is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from tests.builders import make_session

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "templates", ROOT / "dashboard" / "templates"]


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def test_console_and_admin_pages_carry_the_policy(console, supervisor_client, client):
    meta = make_session(turns=2)
    pages = [reverse("dashboard:overview"), reverse("dashboard:session_list"),
             reverse("dashboard:session_detail", args=[meta.session_id]), reverse("admin:index"),
             reverse("admin:chat_sessions"), reverse("admin:chat_session_detail", args=[meta.session_id])]
    for url in pages:
        response = supervisor_client.get(url)
        assert response.status_code == 200, url
        policy = _policy(response)
        assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"], url
        assert policy["style-src"] == ["'self'"] and policy["object-src"] == ["'none'"], url
        assert policy["base-uri"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], url
        assert policy["form-action"] == ["'self'"], url
        assert not any("unsafe" in value for values in policy.values() for value in values), url
    login = client.get("/accounts/login/")
    assert _policy(login)["script-src"] == ["'self'"]


def _templates():
    return sorted(p for d in TEMPLATE_DIRS for p in d.rglob("*.html"))


SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.I)
HANDLER_ATTR = re.compile(r"<[a-z][^>]*\s(on[a-z]+)\s*=", re.I)
STYLE_ATTR = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)


@pytest.mark.parametrize("path", _templates(), ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_have_no_inline_script_handlers_or_style_attributes(path):
    source = path.read_text()
    for attrs in SCRIPT_TAG.findall(source):
        assert "src=" in attrs or 'type="application/json"' in attrs, f"inline <script{attrs}> in {path}"
    assert not HANDLER_ATTR.search(source), f"inline event handler in {path}"
    assert not STYLE_ATTR.search(source), f"style attribute in {path}"


def test_the_overview_chart_data_travels_as_a_json_data_block(console, viewer_client):
    body = viewer_client.get(reverse("dashboard:overview")).content.decode()
    blocks = SCRIPT_TAG.findall(body)
    inline = [attrs for attrs in blocks if "src=" not in attrs]
    # json_script: a data block CSP never executes (and so never refuses).
    assert inline == [' id="overview-series" type="application/json"']
    # htmx is told not to inject its indicator <style> or evaluate attribute JavaScript.
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false, "allowEval": false}\'>' in body
