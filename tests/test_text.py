"""Text helpers: HTML to text (a fast path that agrees with the parser), dates, folding."""

from __future__ import annotations

import re
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


def test_fragments_with_the_same_tags_each_keep_their_own_text():
    # What a run of tags becomes is remembered for the next item of the same template; the
    # words and attributes between them are each item's own, and so is the parser's verdict.
    first = text._simple_html_to_text('<p><a href="/1">One</a> &amp; <em>a</em></p><p>x</p>')
    second = text._simple_html_to_text('<p><a href="/2">Two</a> &lt; <em>b</em></p><p>y</p>')
    assert (first, second) == ("One & a\n\nx", "Two < b\n\ny")
    for _ in range(2):
        assert text._simple_html_to_text("<p>a</p><script>x</script>") is None
        assert text._simple_html_to_text("</p><p>a</p>") is None


def test_a_hostile_feed_cannot_grow_what_the_fast_path_remembers():
    roles, shapes = len(text._TAG_ROLES), len(text._SHAPES)
    names = [f"x{i}" + "y" * 5000 for i in range(20)]
    fragment = "".join(f"<{n}>word</{n}>" for n in names)
    assert text._simple_html_to_text(fragment) == "word" * 20
    assert (len(text._TAG_ROLES), len(text._SHAPES)) == (roles, shapes)


_PIECES = st.sampled_from(
    ["<p>", "</p>", "<b>", "</b>", "<br>", "<br/>", "<div class='a'>", "</div>", "<a href=\"/x\">",
     "</a>", "<li>", "&amp;", "&lt;", "&#39;", "&nbsp;", " ", "\u00a0", "x", "Ü", "НАТО", "<", ">",
     "'", '"', "<img src=x>", "<h3>", "</h3>", "<span>", "</span>", "&", "=", "/",
     # what only the parser reads, found as the tags are walked (a name in an attribute's
     # value is not a tag)
     "<script>", "</script>", "<PRE>", "<title>", "<!-- c -->", "<a title='<style>'>"]
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
    """clean_space as it was first written, one line at a time, blank lines by a regex."""
    s = text._WS.sub(" ", s)
    s = "\n".join(line.strip() for line in s.split("\n"))
    return re.sub(r"\n\s*\n\s*", "\n\n", s).strip()


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


@settings(max_examples=3000)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from([None, 0, 1, -1, 330, -570, 840, -720]),
)
@example(datetime(999, 12, 31, 23, 0), -60)
@example(datetime(1000, 1, 1, 0, 30), 60)
def test_utc_iso_is_what_strftime_writes(dt, minutes):
    from datetime import UTC, timedelta, timezone

    aware = dt if minutes is None else dt.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    utc = aware.replace(tzinfo=UTC) if minutes is None else aware.astimezone(UTC)
    assert text.to_utc_iso(aware) == utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_out_of_range_rfc822_fields_are_not_dates():
    assert parse_date("Mon, 31 Feb 2026 10:00:00 +0000") is None
    assert parse_date("Mon, 30 Nov 2026 24:00:00 +0000") is None
    assert parse_date("Mon, 30 Nov 2026 10:00:00 +0000") == "2026-11-30T10:00:00Z"


def test_fold_removes_case_and_diacritics_but_keeps_indic_vowel_signs():
    assert fold("İstanbul ısparta Élysée Łódź Straße") == "istanbul isparta elysee lodz strasse"
    assert fold("नमस्ते") == "नमस्ते"


# --- clean text means clean ---------------------------------------------------------------

# Shaped like what WordPress, Blogger and newsroom CMSs put in <content:encoded>: a YouTube
# embed with fallback markup, a lazy-loaded image with its <noscript> twin, a tweet embed
# and its widget script, an inline style block, and an old <xmp> code sample.
EMBEDS = (
    "<p>Ministers met in Brussels.</p>"
    '<iframe width="560" height="315" src="https://www.youtube.com/embed/x">'
    '<p>Your browser does not support iframes: <a href="https://youtu.be/x">watch</a></p>'
    "</iframe>"
    '<img data-src="/a.jpg" class="lazy"><noscript><img src="/a.jpg"></noscript>'
    '<blockquote class="twitter-tweet"><p lang="en">NATO says <b>no</b></p></blockquote>'
    '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>'
    "<style>.wp-block{color:red}</style>"
    "<noembed><embed src='/old.swf'>Flash needed</noembed>"
    "<p>Code: <xmp><b>bold</b> sample</xmp></p>"
)


def test_embeds_and_code_never_reach_the_text():
    out = html_to_text(EMBEDS)
    # <xmp> is a block (it closes the <p>, as in a browser): its words on their own line.
    assert out == "Ministers met in Brussels.\n\nNATO says no\n\nCode:\n\nbold sample"
    for leftover in ("<", "iframe", "browser", "widgets", "color:red", "Flash"):
        assert leftover not in out


@pytest.mark.parametrize(
    ("fragment", "want"),
    [
        ("safe<script>alert(1)</script> text", "safe text"),
        # Escaped once more than it should be: after one reading the markup is still there.
        ("safe&lt;script&gt;alert(1)&lt;/script&gt; text", "safe text"),
        ("&lt;p&gt;One &lt;b&gt;bold&lt;/b&gt;&lt;/p&gt;&lt;p&gt;Two&lt;/p&gt;", "One bold\n\nTwo"),
        ("a<iframe src=x>&lt;b&gt;fallback&lt;/b&gt;</iframe>b", "ab"),
        ("a<noembed><b>x</b></noembed>b", "ab"),
        ("a<noscript><img src=x></noscript>b", "ab"),
        ("a <xmp><b>raw</b> words</xmp> b", "a raw words b"),
        ("a<style>p { color: red }</style>b", "ab"),
    ],
)
def test_no_markup_survives_into_text(fragment: str, want: str):
    assert html_to_text(fragment) == want


def test_prose_that_mentions_a_tag_keeps_it():
    # No end tag and no element that is never prose: a sentence about HTML, not markup.
    assert html_to_text("use the &lt;b&gt; tag when 1 &lt; 2") == "use the <b> tag when 1 < 2"


@pytest.mark.parametrize(("href", "base"), [("x", "http://["), ("http://[::1/x", "http://a/")])
def test_a_link_the_url_parser_refuses_is_no_link(href: str, base: str) -> None:
    assert text.absolute_url(href, base) is None
