"""/api/v1/docs in Chromium with the network cut off: every request to a host other than the live
server is aborted (and recorded), as on a deployment that cannot reach a CDN. Swagger UI must
still render the whole API from this server's own static files, under the console's CSP, and must
not even try to reach anywhere else."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e

# Schemes that are not a request to any host (a stylesheet's inline images, Swagger UI's blobs).
LOCAL_SCHEMES = {"data", "blob", "about"}


def _offline_but_for(page, site: str) -> tuple[list[str], list[str]]:
    """Abort every request to another host; returns (attempted elsewhere, served by the site)."""
    own = urlsplit(site)
    elsewhere: list[str] = []
    served: list[str] = []

    def handle(route):
        url = urlsplit(route.request.url)
        if url.scheme in LOCAL_SCHEMES or (url.scheme, url.netloc) == (own.scheme, own.netloc):
            served.append(route.request.url)
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.context.route("**/*", handle)
    return elsewhere, served


def test_the_docs_render_from_this_server_alone(browser_page, site):
    page = browser_page()
    elsewhere, served = _offline_but_for(page, site)

    response = page.goto(site + "/api/v1/docs")
    assert response.status == 200
    # Swagger UI ran (its bundle and init script came from /static/) and rendered the document.
    page.locator(".swagger-ui .opblock-summary-description", has_text="Append a turn").wait_for()
    summaries = page.locator(".swagger-ui .opblock-summary-description").all_inner_texts()
    assert len(summaries) == 12 and "Search transcripts" in summaries and "Send a heartbeat" in summaries
    assert not any(s.endswith(" View") for s in summaries), summaries  # hand-written, not generated

    # The append operation, opened: its declared responses include the oversize-text 413.
    page.locator(".opblock-post .opblock-summary", has_text="Append a turn").first.click()
    page.locator(".opblock.is-open .responses-table .response-col_status", has_text="413").wait_for()
    page.wait_for_load_state("networkidle")
    shot(page, "api-docs-offline-1280")

    assert elsewhere == [], f"the docs tried to reach other hosts: {elsewhere}"
    paths = {urlsplit(url).path for url in served}
    assert {"/static/ninja/swagger-ui-bundle.js", "/static/ninja/swagger-ui-init.js", "/static/ninja/swagger-ui.css",
            "/api/v1/openapi.json"} <= paths
