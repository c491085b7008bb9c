"""Real-shaped news in every legacy code page: fixtures/charset/news.toml, encoded as outlets do."""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

NEWS = Path(__file__).resolve().parent.parent / "fixtures" / "charset" / "news.toml"
# Vietnamese code page 1258 has the letters with one mark (ê, ơ, ư, ă) but writes the tones
# (grave, hook, tilde, acute, dot below) as combining characters after them.
_VI_TONES = "\u0300\u0309\u0303\u0301\u0323"
# Persian in Windows-1256 was written with the Arabic yeh: the Farsi one is not in it.
_LEGACY_LETTERS = {"cp1256": str.maketrans({"\u06cc": "\u064a"})}
# Typography a code page lacks (ISO-8859-1 has no ’, „ or –): its writers used ASCII.
_PLAIN = {"’": "'", "‘": "'", "„": '"', "“": '"', "”": '"', "«": '"', "»": '"', "–": "-", "—": "-"}


@dataclass(frozen=True)
class Sample:
    lang: str
    name: str
    code_page: str
    items: tuple[tuple[str, str], ...]  # (headline, summary), as the code page can write them

    @property
    def label(self) -> str:
        return f"{self.lang}-{self.code_page}"

    def rss(self, declare: str | None = None, items: int | None = None) -> bytes:
        """An RSS 2.0 feed of the items in this code page; `declare` goes in its XML
        declaration (None: no declaration, as many legacy feeds are served)."""
        head = f'<?xml version="1.0" encoding="{declare}"?>\n' if declare else ""
        parts = [
            f'{head}<rss version="2.0"><channel><title>{escape(self.name)} news</title>'
            f"<link>https://news.example.{self.lang}/</link><language>{self.lang}</language>\n"
        ]
        for i, (title, summary) in enumerate(self.items[:items]):
            parts.append(
                f"<item><title>{escape(title)}</title>"
                f"<link>https://news.example.{self.lang}/{i}</link>"
                f"<description>{escape(summary)}</description>"
                "<pubDate>Tue, 24 Nov 2026 10:00:00 +0000</pubDate></item>\n"
            )
        parts.append("</channel></rss>\n")
        return encode("".join(parts), self.code_page)

    def html(self, meta: str | None = None) -> bytes:
        """A listing page of the items in this code page, with `<meta charset>` if given."""
        head = f'<meta charset="{meta}">' if meta else ""
        rows = "".join(
            f'<article><h2><a href="/{i}">{escape(t)}</a></h2><p>{escape(s)}</p></article>'
            for i, (t, s) in enumerate(self.items)
        )
        return encode(
            f"<!doctype html><html><head>{head}</head><body>{rows}</body></html>", self.code_page
        )

    def texts(self) -> list[str]:
        return [t for item in self.items for t in item]


def encode(text: str, code_page: str) -> bytes:
    """`text` in `code_page`, Vietnamese tones split off as code page 1258 writes them."""
    if code_page == "cp1258":
        text = "".join(_cp1258_letter(ch) for ch in text)
    return text.encode(code_page)


def _cp1258_letter(ch: str) -> str:
    try:
        ch.encode("cp1258")
        return ch
    except UnicodeEncodeError:
        parts = unicodedata.normalize("NFD", ch)
        tones = "".join(c for c in parts if c in _VI_TONES)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in _VI_TONES))
        return base + tones


def _as_written(text: str, code_page: str) -> str:
    text = text.translate(_LEGACY_LETTERS.get(code_page, {}))
    return "".join(_PLAIN.get(ch, ch) if not _writable(ch, code_page) else ch for ch in text)


def _writable(ch: str, code_page: str) -> bool:
    try:
        encode(ch, code_page)
    except UnicodeEncodeError:
        return False
    return True


def samples() -> list[Sample]:
    """One sample per (language, code page) in news.toml."""
    out = []
    for lang, entry in tomllib.loads(NEWS.read_text(encoding="utf-8")).items():
        for code_page in entry["code_pages"]:
            items = tuple(
                (_as_written(t, code_page), _as_written(s, code_page)) for t, s in entry["items"]
            )
            out.append(Sample(lang, entry["name"], code_page, items))
    return out
