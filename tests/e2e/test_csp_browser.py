"""The Content-Security-Policy in a real browser: the console's scripts (htmx, Chart.js, the
overview's chart code) and the Django admin's own JavaScript run under it, nothing on these pages
is refused (the ``csp_violations`` fixture fails the test otherwise), and a script smuggled into
chat text would not run even if it escaped escaping."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from sessions_app import services
from tests.builders import make_session
from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e


def test_the_policy_is_sent_and_the_console_scripts_run_under_it(make_page, site):
    make_session(turns=3)
    page = make_page()
    response = page.goto(site + "/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Chart.js drew both charts from the json_script data block: console.js ran.
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-turns') && Chart.getChart('chart-cache')")
    # htmx runs too: a refresh of the metrics block swaps new numbers in, and the charts redraw
    # from the new data block (console.js listens for htmx:afterSwap).
    page.evaluate("() => { document.querySelector('#metrics .tiles').dataset.stale = 'yes'; }")
    with page.expect_response(lambda r: r.url.endswith("/overview/metrics/")) as info:
        page.evaluate("() => htmx.ajax('GET', '/overview/metrics/', '#metrics')")
    assert info.value.ok
    page.wait_for_selector("#metrics .tiles:not([data-stale])")
    assert page.evaluate("() => Chart.getChart('chart-turns').data.labels.length") > 0
    assert page.evaluate("() => document.querySelectorAll('head style').length") == 0  # htmx injected none
    shot(page, "csp-overview-1280")


def test_an_inline_script_would_be_refused(make_page, site, csp_violations):
    page = make_page()
    page.goto(site + "/sessions/")
    # Anything that got past escaping as markup would be inline script: the policy refuses it,
    # and the watcher every browser test relies on sees the refusal.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        directive = page.evaluate("""() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', e => resolve(e.effectiveDirective), {once: true});
            const s = document.createElement('script');
            s.textContent = 'window.__ran = 1';
            document.body.appendChild(s);
        })""")
    assert directive == "script-src-elem"
    assert page.evaluate("() => window.__ran") is None
    assert any("inline script" in v and "Content Security Policy" in v for v in csp_violations), csp_violations
    csp_violations.clear()  # the one refusal this test provoked


def test_control_characters_show_as_markers_in_the_browser(make_page, site):
    meta = make_session()
    services.turn_write(session_id=meta.session_id, role="user", text="Refund \u202eden\u0131ed\u202c ok\x00",
                        client_msg_id="bidi")
    page = make_page(group="Viewer")
    page.goto(f"{site}/sessions/{meta.session_id}/")
    text = page.inner_text("#turn-1 .turn-text")
    assert text == "Refund U+202Eden\u0131edU+202C okU+0000"
    marker = page.locator("#turn-1 .turn-text .ctl").first
    assert marker.get_attribute("title") == "U+202E RIGHT-TO-LEFT OVERRIDE"
    # Styled by controls.css (a stylesheet, as the policy wants): boxed and in the accent colour.
    assert marker.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    shot(page, "controls-visible-1280")


def test_the_django_admin_works_under_the_policy(browser_page, site):
    User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    meta = make_session(turns=2, customer_id="cust-adm")
    page = browser_page()
    page.goto(site + "/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root-123")
    page.click("input[type=submit]")
    page.wait_for_url(site + "/admin/")
    # The admin's JavaScript runs: the user form's group chooser is built by SelectFilter2.js,
    # the changelist's select-all checkbox works through actions.js.
    page.goto(site + f"/admin/auth/user/{User.objects.get(username='root').pk}/change/")
    page.wait_for_selector("#id_groups_from")
    page.goto(site + "/admin/auth/user/")
    page.check("#action-toggle")
    assert page.locator("input.action-select:checked").count() == 1
    for path in ["/admin/", "/admin/chat-sessions/?q=cust-adm", f"/admin/chat-sessions/{meta.session_id}/",
                 "/admin/sessions_app/auditlog/", "/admin/sessions_app/apikey/add/", "/admin/axes/accessattempt/"]:
        response = page.goto(site + path)
        assert response.status == 200, path
    shot(page, "csp-admin-1280")


def test_the_api_docs_render_under_the_policy(browser_page, site):
    # Swagger UI is served from django-ninja's static files with its settings in a data block.
    page = browser_page()
    page.goto(site + "/api/v1/docs")
    page.locator(".swagger-ui .opblock-summary-path", has_text="{session_id}/context").first.wait_for()
