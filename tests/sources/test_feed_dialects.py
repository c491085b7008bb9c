"""Feeds as the world writes them: Atom 0.3 and its encodings, stand-in text elements, the
iTunes namespace in its real spellings, author forms, dates, ids — read alike by both parsers."""

from __future__ import annotations

import io
from urllib.parse import urljoin

import feedparser
import pytest

import monitor.feeds.document as feed_module
from monitor.archive.sqlite import Store
from monitor.models import Media, Post
from monitor.xmlsafe import MalformedXML
from tests.conftest import FIXTURES

FEEDS = FIXTURES / "feeds"
URL = "https://world.example.cn/rss/world.xml"
PATHS = ["lxml", "feedparser"]


def read(body: bytes, path: str, monkeypatch: pytest.MonkeyPatch) -> list[Post]:
    """Posts of a document read by the lxml fast path, or by the feedparser fallback that
    takes the documents lxml rejects."""

    def malformed(*args: object, **kwargs: object) -> None:
        raise MalformedXML("as if the document were broken")

    with monkeypatch.context() as m:
        if path == "feedparser":
            m.setattr(feed_module, "parse_xml", malformed)
        return feed_module.parse_feed(body, URL)


def parse(name: str, path: str, monkeypatch: pytest.MonkeyPatch) -> list[Post]:
    return read((FEEDS / name).read_bytes(), path, monkeypatch)


# --- podcasts ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_itunes_namespace_with_the_capitals_of_apples_old_documentation_is_read(path, monkeypatch):
    first, second = parse("podcast-itunes-dtd-capitals.xml", path, monkeypatch)
    assert first.author == "Jane Roe"  # itunes:author
    assert first.text == "Defence ministers discuss air defence for Ukraine."  # itunes:summary
    assert second.text == "Turkey hosts talks on Black Sea shipping."
    enclosure = next(m for m in first.media if m.role == "enclosure")
    assert enclosure.duration == 42 * 60 + 17  # <itunes:duration>00:42:17
    assert next(m for m in second.media if m.role == "enclosure").duration == 1805
    image = Media(url="https://radio.example.org/art/ep-412.jpg", medium="image", role="image")
    assert image in first.media


def test_itunes_image_given_as_text_is_read(monkeypatch):
    # feedparser reads only the href form: the lxml path alone gets this one.
    second = parse("podcast-itunes-dtd-capitals.xml", "lxml", monkeypatch)[1]
    image = Media(url="https://radio.example.org/art/ep-411.jpg", medium="image", role="image")
    assert image in second.media


@pytest.mark.parametrize(
    "namespace",
    [
        "http://www.itunes.com/dtds/podcast-1.0.dtd",
        "http://www.itunes.com/DTDs/Podcast-1.0.dtd",
        "http://www.itunes.com/DTDs/PodCast-1.0.dtd",
        "https://www.itunes.com/dtds/podcast-1.0.dtd",
        "http://itunes.com/dtds/podcast-1.0.dtd",
        "http://www.itunes.com/dtds/podcast-1.0.dtd/",
    ],
)
def test_every_spelling_of_the_itunes_namespace_is_itunes(namespace):
    body = (
        f'<rss version="2.0" xmlns:itunes="{namespace}"><channel><item><title>Episode 1</title>'
        "<itunes:author>Jane Roe</itunes:author><itunes:summary>Words.</itunes:summary>"
        '<enclosure url="https://m.example.org/1.mp3" type="audio/mpeg" length="1"/>'
        "<itunes:duration>1:02:03</itunes:duration>"
        '<itunes:image href="https://m.example.org/1.jpg"/></item></channel></rss>'
    ).encode()
    (post,) = feed_module.parse_feed(body, URL)
    assert (post.author, post.text) == ("Jane Roe", "Words.")
    assert [(m.role, m.duration) for m in post.media] == [("enclosure", 3723.0), ("image", None)]


# --- Atom 0.3, base64 and escaped markup ---------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_atom_content_in_base64_is_decoded(path, monkeypatch):
    nato = parse("atom03-base64-escaped.xml", path, monkeypatch)[0]
    assert nato.text == "Министры обороны стран НАТО встретились в Брюсселе."


@pytest.mark.parametrize("path", PATHS)
def test_markup_escaped_twice_becomes_clean_text(path, monkeypatch):
    ankara = parse("atom03-base64-escaped.xml", path, monkeypatch)[1]
    assert ankara.text == "Переговоры о зерновом коридоре."


@pytest.mark.parametrize("path", PATHS)
def test_a_plain_text_summary_holding_a_script_gives_clean_text(path, monkeypatch):
    note = parse("atom03-base64-escaped.xml", path, monkeypatch)[2]
    assert note.text == "safe text"


def test_atom_1_html_content_escaped_twice_becomes_clean_text():
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>urn:x:1</id>'
        b"<title>Ministers meet</title>"
        b'<content type="html">&amp;lt;p&amp;gt;NATO &amp;lt;b&amp;gt;ministers&amp;lt;/b&amp;gt;'
        b" met.&amp;lt;/p&amp;gt;</content></entry></feed>"
    )
    assert feed_module.parse_feed(body, URL)[0].text == "NATO ministers met."


def test_atom_1_content_of_another_media_type_is_base64():
    # RFC 4287 4.1.3.3: content whose type is neither text/* nor XML holds base64. Text is
    # decoded; bytes that are not text give no text rather than gibberish.
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b"<entry><id>urn:x:1</id><title>a</title>"
        b'<content type="application/x-note">TkFUTyBtaW5pc3RlcnMgbWV0Lg==</content></entry>'
        b"<entry><id>urn:x:2</id><title>b</title>"
        b'<content type="image/png">iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB</content></entry></feed>'
    )
    a, b = feed_module.parse_feed(body, URL)
    assert (a.text, b.text) == ("NATO ministers met.", None)


@pytest.mark.parametrize("path", PATHS)
def test_atom_link_given_as_text_and_authors_with_emails(path, monkeypatch):
    nato, ankara, note = parse("atom03-base64-escaped.xml", path, monkeypatch)
    assert ankara.url == "https://blog.example.ru/2025/02/12/ankara.html"  # <link>URL</link>
    assert nato.author == "Ирина Петрова"  # Name <email>
    assert ankara.author == "Олег Смирнов"  # Name (email)
    assert note.author == "Редакция"  # the feed's author, the default of every entry


# --- stand-in text elements, dates, authors, ids -------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_text_is_read_from_stand_in_elements_when_the_usual_ones_are_missing(path, monkeypatch):
    texts = [p.text for p in parse("rss-stand-in-bodies.xml", path, monkeypatch)]
    assert texts == [
        "北约国防部长周四在布鲁塞尔会晤。\n\n会议讨论了防空问题。",  # xhtml:body
        "土耳其主办黑海航运谈判。",  # dc:description
        "气候峰会在日内瓦开幕。",  # fullitem, its player and script dropped
        "央行周二维持利率不变。",  # body
    ]


def test_dc_description_and_body_in_atom_entries():
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b"<title>t</title><entry><id>urn:x:1</id><title>a</title>"
        b"<dc:description>Ministers met.</dc:description><dc:creator>Jane Roe</dc:creator>"
        b"</entry></feed>"
    )
    (post,) = feed_module.parse_feed(body, URL)
    assert (post.text, post.author) == ("Ministers met.", "Jane Roe")


@pytest.mark.parametrize("path", PATHS)
def test_year_first_slash_dates_are_read_year_month_day(path, monkeypatch):
    dates = [p.published_at for p in parse("rss-stand-in-bodies.xml", path, monkeypatch)]
    assert dates == [
        "2020-01-10T14:33:00Z",  # 2020/1/10 14:33:00: 10 January, not 1 October or December
        "2020-01-09T08:05:00Z",
        "2020-01-08T21:40:00Z",
        "2020-01-07T16:00:00Z",
    ]


@pytest.mark.parametrize("path", PATHS)
def test_authors_from_dc_author_and_name_with_email(path, monkeypatch):
    authors = [p.author for p in parse("rss-stand-in-bodies.xml", path, monkeypatch)]
    assert authors[:2] == ["王伟", "Li Na"]


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("jane@example.org (Jane Roe)", "Jane Roe"),
        ("Jane Roe (jane@example.org)", "Jane Roe"),
        ("Jane Roe <jane@example.org>", "Jane Roe"),
        ('"Jane Roe" <mailto:jane@example.org>', "Jane Roe"),
        ("Jane Roe (Reuters)", "Jane Roe (Reuters)"),
        ("jane@example.org", "jane@example.org"),
    ],
)
def test_rss_author_forms_give_the_name(written, name):
    body = (
        f"<rss><channel><item><title>a</title><author>{written.replace('<', '&lt;')}</author>"
        "</item></channel></rss>"
    ).encode()
    assert feed_module.parse_feed(body, URL)[0].author == name


@pytest.mark.parametrize("path", PATHS)
def test_a_relative_guid_is_one_id_whichever_parser_reads_it(path, monkeypatch):
    posts = parse("rss-stand-in-bodies.xml", path, monkeypatch)
    assert [p.external_id for p in posts] == ["1000", "999", "998", "997"]
    # The guid is an id, not a link: each item's link is its own <link>.
    assert posts[0].url == "https://world.example.cn/2020/01/10/1000.shtml"
    assert posts[0].former_ids == ("https://world.example.cn/rss/1000",)


@pytest.mark.parametrize("path", PATHS)
def test_a_relative_permalink_guid_without_a_link_is_no_link(path, monkeypatch):
    body = b"<rss><channel><item><title>a</title><guid>1000</guid></item></channel></rss>"
    (post,) = read(body, path, monkeypatch)
    assert (post.external_id, post.url) == ("1000", None)


def test_an_archive_holding_the_former_id_gets_no_duplicate(tmp_path, monkeypatch):
    body = (FEEDS / "rss-stand-in-bodies.xml").read_bytes()
    # What the previous release's feedparser fallback stored: each guid resolved against the
    # feed URL, as feedparser does when told the document's location.
    old = feedparser.parse(io.BytesIO(body), response_headers={"content-location": URL})
    assert old.entries[0].id == "https://world.example.cn/rss/1000"
    store = Store(tmp_path / "archive.db")
    store.sync_sources([("cn", "feed", URL)])
    with store.transaction() as db:
        first = [Post(external_id=e.id, url=e.link, title=e.title) for e in old.entries]
        assert store.save_posts(db, "cn", first).new == 4
    for path in PATHS:
        posts = parse("rss-stand-in-bodies.xml", path, monkeypatch)
        with store.transaction() as db:
            saved = store.save_posts(db, "cn", posts)
        assert (saved.new, saved.updated) == (0, 4 if path == "lxml" else 0)
    rows = store.db.execute("SELECT external_id, text FROM posts ORDER BY external_id").fetchall()
    assert len(rows) == 4
    assert dict(rows)["https://world.example.cn/rss/1000"].startswith("北约国防部长")
    # An archive that never held the resolved form keys the posts by the guid as written.
    fresh = Store(tmp_path / "fresh.db")
    fresh.sync_sources([("cn", "feed", URL)])
    with fresh.transaction() as db:
        fresh.save_posts(db, "cn", parse("rss-stand-in-bodies.xml", "lxml", monkeypatch))
    ids = {r[0] for r in fresh.db.execute("SELECT external_id FROM posts")}
    assert ids == {"1000", "999", "998", "997"}
    assert urljoin(URL, "1000") == "https://world.example.cn/rss/1000"
    store.close()
    fresh.close()
