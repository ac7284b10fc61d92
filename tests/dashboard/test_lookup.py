"""The console's lookup: the top bar's box (``/sessions/?q=``), the sessions list's customer
field by prefix in any case, session ids on the list's rows, and the customer directory entry
going with a customer's privacy delete. Real DynamoDB Local and Redis."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from django.urls import reverse

from sessions_app import keys
from sessions_app.models.table import CustomerEntry
from sessions_app.selectors import lookup as lookup_selectors
from tests.builders import make_session

LIST = "/sessions/"


def _get(client, status=200, **params):
    response = client.get(LIST, params)
    assert response.status_code == status, (response.status_code, response.content[:800])
    return response


def _location(response) -> str:
    assert response.status_code == 302, response.status_code
    return response["Location"]


def test_the_lookup_box_is_on_every_console_page(console, viewer_client):
    meta = make_session(turns=1)
    for url in (reverse("dashboard:overview"), LIST, reverse("dashboard:handoff_queue"), reverse("dashboard:search"),
                reverse("dashboard:session_detail", args=[meta.session_id]),
                reverse("dashboard:customer_detail", args=[meta.customer_id])):
        body = viewer_client.get(url).content.decode()
        assert re.search(r'<form method="get" action="/sessions/" class="topbar-search topbar-lookup"', body), url
        assert 'id="topbar-lookup"' in body and 'name="q"' in body, url


def test_the_lookup_box_is_not_there_for_the_logged_out(console, client):
    assert "topbar-lookup" not in client.get("/accounts/login/").content.decode()
    response = client.get(LIST, {"q": "anything"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_an_exact_id_or_the_only_prefix_match_goes_to_the_session(console, viewer_client):
    meta = make_session(session_id="9c0ffee1d2e3f4a5b6c7d8e9f0a1b2c3")
    make_session(session_id="9c0ffee2-neighbour")
    detail = reverse("dashboard:session_detail", args=[meta.session_id])
    assert _location(_get(viewer_client, 302, q=meta.session_id)) == detail
    assert _location(_get(viewer_client, 302, q="  9C0FFEE1  ")) == detail  # 8 characters, any case
    assert _location(_get(viewer_client, 302, q="9c0ffee1d2e3")) == detail


def test_several_matches_are_listed_with_their_ids(console, viewer_client):
    made = [make_session(session_id=f"5eed5eed-{n}", customer_id=f"cust-{n}").session_id for n in range(3)]
    body = _get(viewer_client, q="5EED5EED").content.decode()
    assert 'id="lookup-results"' in body
    for session_id in made:
        assert f'<code title="{session_id}">{session_id}</code>' in body
        assert f'href="/sessions/{session_id}/"' in body
    assert "lookup-more-sessions" not in body
    assert 'value="5EED5EED"' in body  # the box keeps what was typed


def test_more_matches_than_listed_ask_to_refine(console, viewer_client, monkeypatch):
    monkeypatch.setattr(lookup_selectors, "LOOKUP_LIMIT", 2)
    for n in range(3):
        make_session(session_id=f"feedbeef-{n}")
    body = _get(viewer_client, q="feedbeef").content.decode()
    assert len(re.findall(r'<code title="feedbeef-\d">', body)) == 2
    assert 'id="lookup-more-sessions"' in body and "refine" in body


def test_a_prefix_shorter_than_eight_is_refused_unless_it_is_an_exact_id(console, viewer_client):
    make_session(session_id="abcdef1234")
    short = make_session(session_id="s-42")
    body = _get(viewer_client, 400, q="abcdef1").content.decode()
    assert 'id="lookup-error"' in body and "at least 8 characters" in body
    assert _location(_get(viewer_client, 302, q="s-42")) == reverse("dashboard:session_detail", args=[short.session_id])
    assert _location(_get(viewer_client, 302, q="S-42")) == reverse("dashboard:session_detail", args=[short.session_id])
    body = _get(viewer_client, 400, q="not an id!").content.decode()
    assert 'id="lookup-error"' in body and "letters, digits" in body
    assert _location(_get(viewer_client, 302, q="")) == reverse("dashboard:session_list")


def test_nothing_found_says_so(console, viewer_client):
    body = _get(viewer_client, q="deadbeefdeadbeef").content.decode()
    assert 'id="lookup-none"' in body


def test_the_lookup_box_finds_customers_by_prefix_in_any_case(console, viewer_client):
    for n in range(10, 20):
        make_session(customer_id=f"CUST-{n:04d}")
    make_session(customer_id="cust-0018")
    body = _get(viewer_client, q="cust-001").content.decode()
    listed = re.findall(r'<a href="/customers/([^/]+)/"><code>', body)
    assert set(listed) == {f"CUST-{n:04d}" for n in range(10, 20)} | {"cust-0018"}
    assert "CUST-0018" in listed and "CUST-0010" in listed
    make_session(customer_id="shop-only")
    assert _location(_get(viewer_client, 302, q="SHOP-ONLY")) == reverse("dashboard:customer_detail", args=["shop-only"])


def test_the_customer_filter_takes_a_prefix_in_any_case(console, viewer_client):
    mine = make_session(customer_id="cust-0018")
    make_session(customer_id="cust-0019")
    other = make_session(customer_id="someone-else")
    # One customer matching: the list, filtered by that customer's exact id (the URL holds it).
    location = _location(_get(viewer_client, 302, customer="CUST-0018", channel="web"))
    params = parse_qs(urlsplit(location).query)
    assert params["customer"] == ["cust-0018"] and params["channel"] == ["web"]
    body = viewer_client.get(location, follow=True).content.decode()
    assert f"/sessions/{mine.session_id}/" in body and f"/sessions/{other.session_id}/" not in body
    assert "the one customer id matching" in body
    # The exact id: filtered at once, no redirect.
    body = _get(viewer_client, customer="cust-0018").content.decode()
    assert f"/sessions/{mine.session_id}/" in body
    # Several: the customers to choose from, linking to their pages; no sessions listed.
    body = _get(viewer_client, customer="CUST-001").content.decode()
    assert 'id="customer-choices"' in body
    assert set(re.findall(r'<a href="/customers/([^/]+)/"><code>', body)) == {"cust-0018", "cust-0019"}
    assert "?customer=cust-0019" in body and 'id="session-list-region"' not in body
    # None in the directory: the exact filter, as before.
    body = _get(viewer_client, customer="nobody").content.decode()
    assert "No sessions on this page." in body


def test_rows_show_the_session_id_in_monospace_truncated_with_the_whole_id_in_the_title(console, viewer_client):
    meta = make_session()
    body = _get(viewer_client).content.decode()
    assert f'<code title="{meta.session_id}">{meta.session_id[:12]}…</code>' in body
    assert "<th>Session</th>" in body


def test_a_customer_privacy_delete_removes_the_directory_entry(console, supervisor_client):
    make_session(customer_id="Forget-Me", turns=2)
    make_session(customer_id="forget-me-not")
    pk = keys.customer_item_pk("Forget-Me")
    assert CustomerEntry.get(pk, keys.CUSTOMER_ITEM_SK, consistent_read=True).customer_id == "Forget-Me"
    response = supervisor_client.post(reverse("dashboard:customer_delete", args=["Forget-Me"]), {"confirm": "Forget-Me"})
    assert response.status_code == 200 and 'data-complete="yes"' in response.content.decode()
    assert CustomerEntry.count(pk, consistent_read=True) == 0
    assert lookup_selectors.customer_lookup(query="forget-me").ids == ["forget-me-not"]
    from sessions_app.models import AuditLog

    receipt = AuditLog.objects.get(action="privacy_delete_customer").detail["receipt"]
    assert receipt["directory_entry_deleted"] is True
    # The other customer's entry is untouched; the lookup box no longer finds the erased one.
    assert _location(_get(supervisor_client, 302, q="FORGET-ME")) == reverse("dashboard:customer_detail",
                                                                             args=["forget-me-not"])
