"""One item, one reading: the lxml fast path and the feedparser fallback agree on real feeds.

A feed moves between the two paths whenever it turns malformed (a truncated answer, a stray
`&`) or well-formed again, and every field they read differently is then an edit in the
archive, and every id they read differently a second post with a second alert.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import monitor.feeds.document as feed_module
from monitor.errors import ParseError
from monitor.models import Post
from monitor.xmlsafe import MalformedXML
from tests.conftest import REALDATA

URL = "https://feeds.example.org/news/feed.xml"
FIELDS = ("external_id", "title", "url", "published_at", "text", "author")


def xml_feeds() -> list[Path]:
    if not REALDATA.is_dir():
        return []
    paths = [p for d in ("rss", "atom") for p in (REALDATA / d).glob("*")]
    paths += (REALDATA / "youtube").glob("channel-feed-*.xml")
    paths += (REALDATA / "mastodon").glob("account-rss-*.xml")
    return sorted(paths)


def rel(path: Path) -> str:
    return path.relative_to(REALDATA).as_posix()


FILES = xml_feeds()

# Where feedparser itself loses what the document says, so that its path cannot agree.
# Keep this short; each entry says why feedparser is wrong.
FEEDPARSER_WRONG = {
    ("youtube/channel-feed-PBSSpaceTime-UC7_gcs09iThXybpVgjHZ_7g.xml", "text"): (
        "feedparser labels media:description text/html (the default of its <description> "
        "handler), so its line breaks are lost; Media RSS says it is plain text unless "
        'type="html"'
    ),
    ("youtube/channel-feed-user-Kurzgesagt-2026.xml", "text"): (
        "as for PBS Space Time: media:description read as HTML, its line breaks lost"
    ),
    ("atom/theverge-all-posts-atom-2023.xml", "author"): (
        "one <author> holds two <name>s; feedparser keeps the last, the lxml path the first "
        "(the byline's lead author)"
    ),
}


def both(body: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """What each path makes of `body`: its posts, or its ParseError."""

    def malformed(*args: object, **kwargs: object) -> None:
        raise MalformedXML("as if the document were broken")

    out: list[object] = []
    for fallback in (False, True):
        with monkeypatch.context() as m:
            if fallback:
                m.setattr(feed_module, "parse_xml", malformed)
            try:
                out.append(feed_module.parse_feed(body, URL))
            except ParseError as e:
                out.append(e)
    return out[0], out[1]


def disagreements(lxml: list[Post], lenient: list[Post]) -> list[tuple[str, str, object, object]]:
    return [
        (a.external_id, field, getattr(a, field), getattr(b, field))
        for a, b in zip(lxml, lenient, strict=True)
        for field in FIELDS
        if getattr(a, field) != getattr(b, field)
    ]


@pytest.mark.parametrize("path", FILES, ids=[rel(p) for p in FILES])
def test_both_parsers_read_every_realdata_feed_alike(path: Path, monkeypatch):
    lxml, lenient = both(path.read_bytes(), monkeypatch)
    if isinstance(lxml, ParseError) or isinstance(lenient, ParseError):
        # A document with no readable item fails on either path, with the same reason.
        assert type(lxml) is type(lenient), (lxml, lenient)
        assert str(lxml) == str(lenient)
        return
    assert isinstance(lxml, list) and isinstance(lenient, list)
    assert [p.external_id for p in lxml] == [p.external_id for p in lenient]
    differ = [d for d in disagreements(lxml, lenient) if (rel(path), d[1]) not in FEEDPARSER_WRONG]
    assert differ == [], f"{len(differ)} fields differ, the first: {differ[0]}"


def test_each_listed_feedparser_mistake_still_happens(monkeypatch):
    """An exception that no longer applies is removed, not kept 'just in case'."""
    if not REALDATA.is_dir():
        pytest.skip("realdata not present")
    for (name, field), _why in FEEDPARSER_WRONG.items():
        lxml, lenient = both((REALDATA / name).read_bytes(), monkeypatch)
        assert isinstance(lxml, list) and isinstance(lenient, list)
        assert any(d[1] == field for d in disagreements(lxml, lenient)), (name, field)
