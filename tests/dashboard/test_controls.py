"""Control and bidi characters in customer-supplied text are shown as visible markers, never
rendered raw: a right-to-left override would reorder what staff read, a NUL or an escape
sequence would hide or garble it. The text stays escaped."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.template import Context, Template
from django.urls import reverse

from sessions_app import keys, services
from sessions_app.models import SessionMeta, Summary
from tests.builders import make_session

# "Refund approved" reads "devorppa dnufeR" behind an RLO; the NUL and ESC hide in plain sight.
SPOOF = "Order <b>42</b>\u202e devorppa dnufeR\u202c ok\x00\x1b[2J \u2066isolate\u2069 \u200fRLM"
INVISIBLE = ["\u202e", "\u202c", "\x00", "\x1b", "\u2066", "\u2069", "\u200f"]
MARKERS = ["U+202E", "U+202C", "U+0000", "U+001B", "U+2066", "U+2069", "U+200F"]


def _render(value, autoescape: bool = True) -> str:
    source = "{% load console %}" + ("" if autoescape else "{% autoescape off %}") + "{{ value|visible_controls }}" + \
             ("" if autoescape else "{% endautoescape %}")
    return Template(source).render(Context({"value": value}))


def _assert_shown(html: str, count: int = 1) -> None:
    for char in INVISIBLE:
        assert char not in html, repr(char)
    for marker in MARKERS:
        assert html.count(f'<span class="ctl" title="{marker}') >= count, marker


def test_filter_marks_each_control_and_bidi_character_and_keeps_escaping():
    html = _render(SPOOF)
    _assert_shown(html)
    assert html.startswith("Order &lt;b&gt;42&lt;/b&gt;")
    assert '<span class="ctl" title="U+202E RIGHT-TO-LEFT OVERRIDE">U+202E</span> devorppa' in html
    assert '<span class="ctl" title="U+0000 control character">U+0000</span>' in html


@pytest.mark.parametrize("text", ["plain text", "進撃の巨人の34巻", "line one\nline two\tindented\r\n",
                                  "👨\u200d👩\u200d👧 family emoji (zero-width joiners)", "می\u200cخواهم"])
def test_ordinary_text_and_joiners_are_left_alone(text):
    assert _render(text) == text


def test_markup_in_the_value_stays_escaped_even_with_autoescape_off():
    # The filter returns safe markup, so it must escape what it was given whatever the context says.
    assert _render("<script>x</script>\u202e", autoescape=False).startswith("&lt;script&gt;x&lt;/script&gt;<span")


def test_console_detail_list_and_summary_show_the_markers(console, viewer_client):
    meta = make_session(customer_id="cust-bidi")
    services.turn_write(session_id=meta.session_id, role="user", text=SPOOF, client_msg_id="c-1")
    services.turn_write(session_id=meta.session_id, role="assistant", text="answer", client_msg_id="c-2",
                        model="model\u202ex")
    SessionMeta.get(meta.pk, meta.sk).update(actions=[SessionMeta.tags.set(["vip\u202e"])])
    Summary(meta.pk, keys.summary_sk(1), through_seq=1, text="Summary: " + SPOOF, generator="extractive",
            created_at=datetime.now(timezone.utc)).save()
    SessionMeta.get(meta.pk, meta.sk).update(actions=[SessionMeta.summary_through.set(1)])

    detail = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    _assert_shown(detail, count=2)  # the turn and the summary
    assert "Order &lt;b&gt;42&lt;/b&gt;" in detail
    assert 'vip<span class="ctl"' in detail and 'model<span class="ctl"' in detail

    listing = viewer_client.get(reverse("dashboard:customer_detail", args=["cust-bidi"])).content.decode()
    assert "\u202e" not in listing and "\x00" not in listing and 'title="U+202E' in listing

    panel = viewer_client.get(reverse("dashboard:session_summary_panel", args=[meta.session_id])).content.decode()
    _assert_shown(panel)
