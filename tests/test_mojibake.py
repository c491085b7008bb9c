"""Mojibake made upstream is undone where that is unambiguous, and right text is never touched."""

from __future__ import annotations

import dataclasses

import pytest

import monitor.feeds.document as document
from monitor.charset import decode_html, repair_mojibake
from monitor.errors import ParseError
from monitor.feeds.document import parse_feed
from monitor.text import html_to_text
from tests.charset_samples import samples
from tests.conftest import REALDATA

URL = "https://news.example.org/feed.xml"


def rss(item: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>News</title>'
        f"<item>{item}<link>https://news.example.org/1</link></item></channel></rss>"
    ).encode()


def test_utf8_bytes_written_as_numeric_entities_are_read_as_the_character():
    # A CMS that took UTF-8 for Latin-1 and escaped each byte: "…" became three references.
    [post] = parse_feed(rss("<title>Wait&#226;&#128;&#166; what did he say</title>"), URL)
    assert post.title == "Wait… what did he say"


def test_double_encoded_utf8_is_read_as_written():
    item = (
        "<title>CafÃ© Ã  Paris : lâ€™Ã‰lysÃ©e rÃ©pond</title>"
        "<description><![CDATA[<p>Le prÃ©sident a dÃ©clarÃ© â€œnonâ€\x9d.</p>]]></description>"
        "<author>JosÃ© GarcÃ\xada</author>"
    )
    [post] = parse_feed(rss(item), URL)
    assert post.title == "Café à Paris : l’Élysée répond"
    assert post.text == "Le président a déclaré “non”."
    assert post.author == "José García"


def test_double_encoded_cyrillic_is_read_as_written():
    title = "НАТО: саммит в Гааге".encode().decode("latin-1")  # read as Latin-1 upstream
    [post] = parse_feed(rss(f"<title>{title}</title>"), URL)
    assert post.title == "НАТО: саммит в Гааге"


@pytest.mark.parametrize(
    "text",
    [
        "SÃO PAULO — A PREFEITURA ANUNCIOU",
        "IRMÃ DE MÃE",
        "ÎN ROMÂNIA, ÎNTÂLNIREA",
        "ÉLYSÉE : « TROUPES AU SOL »",
        "Ça va, Ñandú, ÅLAND, Ø 2 mm, ½ ¼ ¾",
        "İstanbul’da ŞİRKET, Łódź, ČESKÁ",
        "£5 — ©2024 ®, x ≠ y ± z",
        "Über — „Ärger“",
    ],
)
def test_right_text_that_looks_like_mojibake_is_left_alone(text: str):
    assert repair_mojibake(text) == text


def test_right_text_in_every_language_sample_is_left_alone():
    for sample in samples():
        for text in sample.texts():
            assert repair_mojibake(text) is text, sample.label


def _realdata_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(REALDATA.glob("**/*")):
        if path.suffix not in (".xml", ".json", ".html") or not path.is_file():
            continue
        if path.suffix == ".html":
            texts.append(html_to_text(decode_html(path.read_bytes())))
            continue
        try:
            posts = parse_feed(path.read_bytes(), URL)
        except ParseError:
            continue
        texts += [t for p in posts for t in (p.title, p.text, p.author) if t]
    return texts


def test_text_that_was_right_in_the_realdata_corpus_stays_byte_identical(monkeypatch):
    if not REALDATA.is_dir():
        pytest.skip("realdata not present")
    # Every title, text and author of every real feed, and the text of every real page, as
    # read without the repair: none is changed by it.
    monkeypatch.setattr(document, "repair_mojibake", lambda s: s)
    texts = _realdata_texts()
    assert len(texts) > 1000
    changed = [t[:80] for t in texts if repair_mojibake(t) != t]
    assert changed == []


def test_repair_keeps_the_post_object_when_nothing_changed():
    [post] = parse_feed(rss("<title>Москва, 24 ноября</title>"), URL)
    assert document._repaired(post) is post
    fixed = document._repaired(dataclasses.replace(post, title="CafÃ©"))
    assert fixed.title == "Café" and fixed.external_id == post.external_id
