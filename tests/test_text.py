"""Text helpers: HTML to text (a fast path that agrees with the parser), dates, folding."""

from __future__ import annotations

from datetime import datetime

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


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("Thu, 19 Nov 2026 14:52:14 TRT", "2026-11-19T11:52:14Z"),  # Türkiye: TRT World, AA
        ("Thu, 19 Nov 2026 14:52:14 MSK", "2026-11-19T11:52:14Z"),
        ("Thu, 19 Nov 2026 14:52:14 EAT", "2026-11-19T11:52:14Z"),
        ("Thu, 19 Nov 2026 20:52:14 HKT", "2026-11-19T12:52:14Z"),
        ("Fri, 20 Nov 2026 09:00:00 AEDT", "2026-11-19T22:00:00Z"),
    ],
)
def test_zone_abbreviations_of_the_newsrooms_a_desk_follows_are_read(written, utc):
    assert parse_date(written) == utc


def _clean_space_by_lines(s: str) -> str:
    """clean_space as it was first written, one line at a time."""
    s = text._WS.sub(" ", s)
    s = "\n".join(line.strip() for line in s.split("\n"))
    return text._BLANKS.sub("\n\n", s).strip()


@settings(max_examples=3000)
@given(st.text(alphabet=st.sampled_from(list("ab \t\n\r\f\v\x1c\x85\u00a0\u2003\u3000\u2028é")),
               max_size=40))  # fmt: skip
def test_clean_space_strips_each_line_as_str_strip_does(s):
    assert text.clean_space(s) == _clean_space_by_lines(s)


def _general_rfc822(value: str) -> str | None:
    """What parse_date gives without its RFC 822 shortcut."""
    from email.utils import parsedate_to_datetime

    try:
        return text.to_utc_iso(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@settings(max_examples=3000)
@given(
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from(["Mon, ", "mon,", "", "Xyz, "]),
    st.sampled_from(["%d", "%-d"]),
    st.sampled_from(["%b", "%B"]),
    st.sampled_from([":%S", ""]),
    st.sampled_from(["+0000", "-0000", "+0300", "-0530", "+1400", "-1200", "GMT", "UT", "UTC",
                     "Z", "EST", "+03:00", "+0060", "+2359"]),
)  # fmt: skip
@example(datetime(2026, 2, 28, 23, 0), "Sun, ", "%d", "%b", ":%S", "-0100")
def test_the_rfc822_shortcut_reads_dates_as_email_utils_does(dt, day, dd, month, sec, zone):
    value = f"{day}{dt.strftime(f'{dd} {month} %Y %H:%M{sec}')} {zone}"
    if month == "%b" and zone not in ("EST", "+03:00"):
        assert text._rfc822(value) is not None  # the shortcut itself was taken
    assert parse_date(value) == (_general_rfc822(value) if zone != "EST" else
                                 _general_rfc822(value.replace("EST", "-0500")))  # fmt: skip


def test_out_of_range_rfc822_fields_are_not_dates():
    assert parse_date("Mon, 31 Feb 2026 10:00:00 +0000") is None
    assert parse_date("Mon, 30 Nov 2026 24:00:00 +0000") is None
    assert parse_date("Mon, 30 Nov 2026 10:00:00 +0000") == "2026-11-30T10:00:00Z"


def test_fold_removes_case_and_diacritics_but_keeps_indic_vowel_signs():
    assert fold("İstanbul ısparta Élysée Łódź Straße") == "istanbul isparta elysee lodz strasse"
    assert fold("नमस्ते") == "नमस्ते"
