"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live_server.

Playwright's sync API runs an asyncio loop in this thread, which makes Django refuse ORM calls
from it ("async unsafe") — the tests only touch the ORM to create users, so that check is off here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(ddb, redis_client, transactional_db, live_server):
    """The live console on a fresh table, with a logged-out browser-side nothing yet."""
    return live_server.url


def _user(username: str, group: str):
    from django.contrib.auth.models import Group, Permission, User

    # transactional_db flushes the migration's groups after each test: recreate what we need.
    grp, _ = Group.objects.get_or_create(name=group)
    codenames = ["view_chat_sessions"] + {"Supervisor": ["operate_chat_sessions", "handle_chat_sessions"],
                                          "Agent": ["handle_chat_sessions"]}.get(group, [])
    grp.permissions.set(Permission.objects.filter(codename__in=codenames))
    user = User.objects.create_user(username=username, password="pw-" + username + "-123", is_staff=True)
    user.groups.add(grp)
    return user


def watch_for_csp_violations(page, found: list[str]) -> None:
    """Collect what Chromium reports when the Content-Security-Policy refuses something (a console
    error "Refused to …", naming the policy) and any uncaught page error."""
    def on_console(message):
        if "Content Security Policy" in message.text or message.text.startswith("Refused to"):
            found.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: found.append(f"{page.url}: uncaught {error}"))


@pytest.fixture
def csp_violations():
    """Every page built by ``make_page``/``browser_page`` reports here; none may be reported."""
    found: list[str] = []
    yield found
    assert found == [], "the Content-Security-Policy refused something:\n" + "\n".join(found)


@pytest.fixture
def browser_page(chromium, site, csp_violations):
    """``browser_page(viewport=DESKTOP)`` → a fresh, logged-out page, watched for CSP violations."""
    contexts = []

    def build(*, viewport: dict = DESKTOP):
        context = chromium.new_context(viewport=viewport, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        watch_for_csp_violations(page, csp_violations)
        return page

    yield build
    for context in contexts:
        context.close()


@pytest.fixture
def make_page(browser_page, site):
    """``make_page(group="Supervisor", viewport=DESKTOP)`` → a page logged in to the console."""
    count = []

    def build(*, group: str = "Supervisor", viewport: dict = DESKTOP):
        username = f"{group.lower()}-{len(count)}"
        count.append(username)
        _user(username, group)
        page = browser_page(viewport=viewport)
        page.goto(site + "/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", "pw-" + username + "-123")
        page.click("button[type=submit]")
        page.wait_for_url(site + "/")
        return page

    return build


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
