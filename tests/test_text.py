"""Text helpers: HTML to text (a fast path that agrees with the parser), dates, folding."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor import text
from monitor.text import fold, html_to_text, parse_date
from tests.conftest import REALDATA

FRAGMENTS = [
    "<p>Hello &amp; <b>world</b></p><p>Two<br>lines</p>",
    '<div class="x"><a href="/a?b=1&amp;c=2" title="a > b">link</a> text</div>',
    "<p>a\nb</p>",
    "3 < 4 and 5 > 2",
    "<ul><li>one</li><li>two</li></ul>",
    "<p>caf&eacute; &#8217; &#x2014; &nbsp;x</p>",
    "<img src='x.jpg' alt=\"it's\"><h2>Title</h2>text",
]


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_fast_html_to_text_agrees_with_the_html_parser(fragment):
    fast = text._simple_html_to_text(fragment.replace("\n", " "))
    assert fast is not None
    assert fast == text._parsed_html_to_text(fragment.replace("\n", " "))


@pytest.mark.parametrize(
    "fragment",
    ["<p>a</p><script>alert(1)</script>", "<!-- c --><p>x</p>", "<pre>a\n  b</pre>", "x <b"],
)
def test_markup_the_fast_path_cannot_read_goes_to_the_parser(fragment):
    assert text._simple_html_to_text(fragment) is None
    assert "alert" not in html_to_text(fragment) and "<!--" not in html_to_text(fragment)


_PIECES = st.sampled_from(
    ["<p>", "</p>", "<b>", "</b>", "<br>", "<br/>", "<div class='a'>", "</div>", "<a href=\"/x\">",
     "</a>", "<li>", "&amp;", "&lt;", "&#39;", "&nbsp;", " ", "\u00a0", "x", "Ü", "НАТО", "<", ">",
     "'", '"', "<img src=x>", "<h3>", "</h3>", "<span>", "</span>", "&", "=", "/"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
@example("<h3><h3></h3>&amp;</h3>&amp;")  # a heading inside a heading closes the first
@example("<p>a<p></p>b</p>c")
def test_fast_path_agrees_with_the_parser_whenever_it_answers(fragment):
    fast = text._simple_html_to_text(fragment)
    if fast is not None:
        assert fast == text._parsed_html_to_text(fragment)


def test_fast_path_agrees_with_the_parser_on_every_real_feed_description():
    import feedparser

    if not REALDATA.is_dir():
        pytest.skip("no realdata")
    seen = answered = 0
    for path in sorted(REALDATA.glob("**/*.xml")):
        for entry in feedparser.parse(path.read_bytes()).entries:
            for html in [entry.get("summary")] + [c.get("value") for c in entry.get("content", [])]:
                if not html or "<pre" in html:
                    continue
                html = html.replace("\r", " ").replace("\n", " ")
                seen += 1
                fast = text._simple_html_to_text(html)
                if fast is not None:
                    answered += 1
                    assert fast == text._parsed_html_to_text(html), (path.name, html[:120])
    assert seen > 500 and answered > seen * 0.9  # the fast path is the common one


def test_twelve_hour_times_and_zone_names_are_read():
    assert parse_date("Sat, Dec 16 2023 02:02:33 PM") == "2023-12-16T14:02:33Z"
    assert parse_date("Mon, 06 Sep 2021 16:45:00 EST") == "2021-09-06T21:45:00Z"
    assert parse_date("2026-11-24T10:00:00+03:00") == "2026-11-24T07:00:00Z"
    assert parse_date("garbage") is None


def test_fold_removes_case_and_diacritics_but_keeps_indic_vowel_signs():
    assert fold("İstanbul ısparta Élysée Łódź Straße") == "istanbul isparta elysee lodz strasse"
    assert fold("नमस्ते") == "नमस्ते"
