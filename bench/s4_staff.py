"""Scenario 4: staff pages at scale — session list (each filter), session detail, and the first
page of a 10,000-turn session, at two data sizes (10k and 100k sessions at full size).

The two sizes are two tables loaded with the product's bulk loader (parallel batch writes), so
both sizes are measured in the same run, interleaved: every round requests every page from both
tables in random order. "Server time" is the whole Django request (middleware, view, selectors,
template) in-process through ``django.test.Client`` as a logged-in staff user — no network.
"""

from __future__ import annotations

import random
import time

from .stats import Progress, ratio, say, summarize

LIST_P95_TARGET_MS = 50.0
GROWTH_TARGET = 1.2


def run(stack, ctx, *, small: int, large: int, turns_each: int, big_turns: int, rounds: int) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from sessions_app.selectors.filters import SUMMARY_STATES

    from . import data

    settings.DAX_ENDPOINTS = []  # bulk loads go straight to DynamoDB
    sets = {}
    for label, size in (("small", small), ("large", large)):
        sets[label] = data.staff_sessions(f"bench-staff-{size}", sessions=size, turns_each=turns_each, big_turns=big_turns)
    settings.DAX_ENDPOINTS = [stack.dax_endpoint]  # the console reads through DAX, as in production

    user = get_user_model().objects.filter(username="bench-staff").first() or get_user_model().objects.create_superuser(
        "bench-staff", "bench@example.com", "bench-password-not-secret")
    client = Client()
    client.force_login(user)
    rng = random.Random(4)

    pages = {
        "list: no filter": lambda info: "/sessions/",
        "list: status=active": lambda info: "/sessions/?status=active",
        "list: status=handed_off": lambda info: "/sessions/?status=handed_off",
        "list: status=closed": lambda info: "/sessions/?status=closed",
        "list: channel=web": lambda info: "/sessions/?channel=web",
        "list: customer": lambda info: f"/sessions/?customer=cust{rng.randrange(info['customers']):06d}",
        **{f"list: summary={state}": (lambda info, state=state: f"/sessions/?summary={state}") for state in SUMMARY_STATES},
        "session detail": lambda info: f"/sessions/benchs{rng.randrange(info['sessions'] - 1):07d}/",
        "big session first page": lambda info: f"/sessions/{info['big_session']}/",
    }
    samples = {(page, label): [] for page in pages for label in sets}
    failures = {}

    def one(page: str, label: str, record: bool) -> None:
        info = sets[label]
        settings.DYNAMODB_TABLE = info["table"]
        url = pages[page](info)
        t0 = time.perf_counter()
        response = client.get(url)
        ms = (time.perf_counter() - t0) * 1000
        if response.status_code != 200:
            failures[f"{url} ({label})"] = response.status_code
            return
        if record:
            samples[(page, label)].append(ms)

    say("scenario 4: warming both tables' pages")
    for page in pages:
        for label in sets:
            for _ in range(2):
                one(page, label, record=False)
    work = [(page, label) for page in pages for label in sets]
    progress = Progress("scenario 4", rounds * len(work), "pages")
    done = 0
    for _ in range(rounds):
        rng.shuffle(work)
        for page, label in work:
            one(page, label, record=True)
            done += 1
        progress.update(done)
    progress.done(done)

    out = {"sizes": {label: {k: v for k, v in info.items()} for label, info in sets.items()}, "rounds": rounds,
           "failures": failures, "pages": {}}
    rows = []
    for page in pages:
        s, l = summarize(samples[(page, "small")]), summarize(samples[(page, "large")])
        growth = ratio(l.get("p95"), s.get("p95"))
        out["pages"][page] = {"small": s, "large": l, "p95_growth": growth}
        target, verdict = "", ""
        if page.startswith("list"):
            target = f"p95 ≤ {LIST_P95_TARGET_MS:g} ms, growth ≤ {GROWTH_TARGET:g}×"
            ok = l.get("p95") is not None and l["p95"] <= LIST_P95_TARGET_MS and growth is not None and growth <= GROWTH_TARGET
            verdict = "met" if ok else "MISSED"
        rows.append([f"4 staff ({small:,} → {large:,} sessions)", page,
                     f"p50/p95 {s.get('p50', 0):.1f}/{s.get('p95', 0):.1f} → {l.get('p50', 0):.1f}/{l.get('p95', 0):.1f} ms",
                     f"p95 growth {growth}×" + (f"; {target}" if target else ""), verdict])
    out["summary_fill"] = fill = _summary_page_fill(sets, SUMMARY_STATES)
    for state, by_size in fill.items():
        l = by_size["large"]
        rows.append([f"4 staff ({large:,} sessions)", f"list: summary={state}, first {l['pages']} pages",
                     f"{l['rows']} rows, {l['short_pages']} short page(s)",
                     f"{l['examined']} sessions examined for {l['rows']} shown", "met" if l["short_pages"] == 0 else "MISSED"])
    rows.append(["4 staff", "data actually loaded",
                 f"{small:,} + {large:,} sessions", f"~{turns_each} turns/session, big session {big_turns:,} turns", ""])
    out["rows"] = rows
    return out


def _summary_page_fill(sets: dict, states, *, pages: int = 5) -> dict:
    """Whether each summary filter fills its pages: the first ``pages`` pages of each, read the
    way the list view reads them (``browse.session_find``), counting rows, short pages (fewer rows
    than the page size with more to come) and sessions examined."""
    from django.conf import settings

    from sessions_app.selectors.browse import page_size, session_find
    from sessions_app.selectors.filters import SessionFilter

    out = {}
    for state in states:
        out[state] = {}
        for label, info in sets.items():
            settings.DYNAMODB_TABLE = info["table"]
            cursor, rows, short, examined, read = None, 0, 0, 0, 0
            for _ in range(pages):
                page = session_find(filters=SessionFilter(summary_state=state), cursor=cursor)
                read += 1
                rows += len(page.matches)
                examined += page.examined
                if page.cursor is not None and len(page.matches) < page_size(None):
                    short += 1
                cursor = page.cursor
                if cursor is None:
                    break
            out[state][label] = {"pages": read, "rows": rows, "short_pages": short, "examined": examined}
    return out
