"""The code page of documents that name none and are not UTF-8, guessed from their words."""

from __future__ import annotations

import re

import pytest

from monitor.charset import DEFAULT, guess_legacy, undeclared_legacy
from monitor.feeds.document import parse_feed
from monitor.sources.sitemap import parse_sitemap
from monitor.xmlsafe import parse_xml
from tests.conftest import REALDATA

# What an outlet in each language would write, in the code page its legacy systems used.
SAMPLES = [
    ("ru", "cp1251", "Песков: Кремль не видит оснований для переговоров. Лавров рассмеялся."),
    ("ru", "koi8-r", "Москва заявила, что не видит оснований. Лавров рассмеялся в Анталье."),
    ("uk", "koi8-u", "Київ відповів: війська НАТО в Україні - питання, яке ще не вирішене."),
    ("uk", "cp1251", "Зеленський їде до Брюсселя; питання про війська НАТО ще відкрите."),
    ("pl", "cp1250", "Żołnierze NATO mogą się pojawić na Ukrainie, powiedział prezydent."),
    ("cs", "cp1250", "Ministr řekl, že vojáci NATO nebudou na Ukrajině. Příliš žluťoučký kůň."),
    ("tr", "cp1254", "Lavrov, Antalya'da gazetecinin sorusuna gülerek yanıt verdi. Dışişleri."),
    ("el", "iso-8859-7", "Ο Λαβρόφ γέλασε στην ερώτηση του δημοσιογράφου για το ΝΑΤΟ."),
    ("ar", "cp1256", "قال الكرملين إن نشر قوات حلف شمال الأطلسي في أوكرانيا تصعيد خطير"),
    ("fr", "cp1252", "Emmanuel Macron n’exclut pas l’envoi de troupes au sol, a déclaré l’Élysée."),
    (
        "de",
        "cp1252",
        "Die Bundesregierung lehnt die Entsendung von Bodentruppen ab. Größere Übungen.",
    ),
    ("es", "cp1252", "El presidente no descarta el envío de tropas. ¿Qué dijo la OTAN? Niños."),
    ("pt", "latin-1", "Artur Jorge não é mais técnico do Botafogo, diz a direção."),
]


@pytest.mark.parametrize(
    ("lang", "encoding", "text"), SAMPLES, ids=[s[0] + "-" + s[1] for s in SAMPLES]
)
def test_each_code_page_is_told_from_the_others_by_how_its_words_read(lang, encoding, text):
    data = f"<rss><channel><item><title>{text}</title></item></channel></rss>".encode(encoding)
    assert data.decode(guess_legacy(data)) == data.decode(encoding)


@pytest.mark.parametrize(
    ("lang", "encoding", "text"), SAMPLES, ids=[s[0] + "-" + s[1] for s in SAMPLES]
)
def test_an_undeclared_legacy_feed_is_archived_in_its_own_letters(lang, encoding, text):
    body = f"<rss><channel><item><title>{text}</title><link>https://example.org/{lang}</link>"
    body += "</item></channel></rss>"
    [post] = parse_feed(body.encode(encoding), "https://example.org/feed")
    assert post.title == text


def test_western_text_stays_windows_1252_unless_another_page_reads_clearly_better():
    assert guess_legacy("Élysée “troupes au sol” – déclaration".encode("cp1252")) == DEFAULT
    assert guess_legacy(b"<p>\xa9 2026, 21\xb0C</p>") == DEFAULT  # signs, no words


@pytest.mark.parametrize(
    "body",
    [
        b"<rss>plain ASCII</rss>",
        "<rss>Лавров in UTF-8</rss>".encode(),
        b"\xef\xbb\xbf<rss>BOM then caf\xe9</rss>",  # a BOM is a declaration, even a wrong one
        b'<?xml version="1.0" encoding="utf-8"?><rss>caf\xe9</rss>',
        "<rss>Лавров</rss>".encode("utf-16"),
    ],
    ids=["ascii", "utf-8", "bom", "declared", "utf-16"],
)
def test_only_undeclared_non_utf8_documents_are_guessed(body: bytes):
    assert undeclared_legacy(body) is None


def test_an_undeclared_latin1_document_is_xml_and_not_malformed():
    assert (
        parse_xml(b"<rss><channel><title>caf\xe9</title></channel></rss>").findtext("channel/title")
        == "café"
    )


def test_an_undeclared_legacy_news_sitemap_keeps_its_titles():
    sitemap = (
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url>'
        "<loc>https://example.ru/news/1</loc><news:news><news:publication>"
        "<news:name>Пример</news:name><news:language>ru</news:language></news:publication>"
        "<news:publication_date>2026-11-24T10:00:00Z</news:publication_date>"
        "<news:title>Кремль ответил на слова Макрона о войсках</news:title>"
        "</news:news></url></urlset>"
    )
    page = parse_sitemap(sitemap.encode("koi8-r"), "https://example.ru/sitemap.xml")
    assert [p.title for p in page.posts] == ["Кремль ответил на слова Макрона о войсках"]


def _without_declaration(name: str) -> bytes:
    return re.sub(rb"^\s*<\?xml[^>]*\?>", b"", (REALDATA / name).read_bytes())


@pytest.mark.parametrize(
    "name",
    ["rss/liberal-gr-greek-iso8859-7.xml", "rss/muhasebetr-turkish-iso8859-9.xml"],
)
def test_real_feeds_read_the_same_with_their_declaration_taken_away(name: str):
    if not REALDATA.is_dir():
        pytest.skip("realdata not present")
    declared = parse_feed((REALDATA / name).read_bytes(), "https://example.org/feed")
    guessed = parse_feed(_without_declaration(name), "https://example.org/feed")
    assert declared and [p.title for p in guessed] == [p.title for p in declared]
    assert [p.text for p in guessed] == [p.text for p in declared]
