"""Pure: a document's bytes as text, in the encoding it declares or, when that is wrong, the one it is in.

The order is HTTP header, BOM, XML declaration (feeds) or <meta charset> (pages), then
detection; a BOM is the bytes themselves, so it outranks every label (RFC 7303, WHATWG
Encoding). A declaration is used unless it is clearly wrong:

- a document that is valid UTF-8 with letters beyond ASCII is UTF-8, whatever it says: no
  legacy code page yields valid UTF-8 by accident, and a label left over from before a
  site's move to UTF-8 is the commonest mis-declaration of all;
- a document that decodes as declared with more bad byte sequences than good non-ASCII
  characters is not in that encoding. Fewer, and the declaration stands: each bad sequence
  becomes one U+FFFD, the rest of the feed reads as written;
- two declarations that disagree (a server's default ISO-8859-1 over a feed's own
  windows-1251) are settled by the detector, among those two only.

Where no declaration stands, UTF-8 is tried, then chardet. chardet (7.x) was measured
against charset-normalizer and cchardet on the news in every code page in
fixtures/charset/news.toml (bench/bench_charset.py): it alone read every one, short and
long. It costs a few milliseconds a document, so it runs only off the fast path, for
documents that are neither valid UTF-8 nor what they declare.

Known limit: a lone single-byte label is believed when the bytes decode under it, as any
bytes do: a windows-1251 feed served as ISO-8859-1 with no declaration of its own is read
as Latin-1. Telling that apart would put the detector on every legacy feed's fast path.
"""

from __future__ import annotations

import codecs
import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

FALLBACK = "cp1252"  # when nothing fits: what browsers assume for the Western web
_SAMPLE = 32768  # bytes the detector reads: plenty for any script, bounded cost
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))  # fmt: skip
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']\s*([\w.:-]+)", re.I)
_XML_DECL_ENCODING = re.compile(r"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2")
# ISO-2022-JP/KR/CN shift into a character set with ESC $ and back with ESC (: 7-bit
# bytes that are valid UTF-8, and mean something else.
_ISO2022 = re.compile(rb"\x1b\$[@AB()*+]|\x1b\([BJ]")
# Browsers (WHATWG Encoding) read these labels as a superset; so must we, or the bytes
# 0x80-0x9F (curly quotes, dashes, the euro) come out as control characters, and the CJK
# pages lose the characters their vendors added.
_LABELS = {"iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "l1": "cp1252",
           "ascii": "cp1252", "us-ascii": "cp1252", "iso-8859-9": "cp1254",
           "iso8859-9": "cp1254", "latin5": "cp1254", "gb2312": "gb18030", "gbk": "gb18030",
           "tis-620": "cp874", "iso-8859-11": "cp874", "windows-874": "cp874",
           "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "shift_jis": "cp932",
           "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "windows-31j": "cp932",
           "big5": "cp950", "x-euc-jp": "euc_jp", "iso-8859-8-i": "iso8859-8",
           "x-mac-cyrillic": "mac-cyrillic"}  # fmt: skip
# What chardet answers, as the superset a browser would decode it with.
_DETECTED = {"iso8859-1": "cp1252", "iso8859-9": "cp1254", "tis-620": "cp874",
             "euc_kr": "cp949", "shift_jis": "cp932", "big5": "cp950", "gb2312": "gb18030",
             "gbk": "gb18030"}  # fmt: skip


_C1 = re.compile("[\x80-\x9f]")
# A UTF-8 lead byte read as Windows-1252/Latin-1 (Ã, â), Windows-1251 (Г-Е, Р, С; в for
# punctuation, "вЂ”") or Windows-1250 (Ă, Ä, Ĺ, Ć, Č, Ď), then a continuation byte read the
# same way: every mojibake of UTF-8 through those code pages has such a pair. Right text
# rarely does, and only the texts that do are given to ftfy.
_CONTINUATION = (
    "\x80-\xbf\u0104\u0105\u013d\u013e\u0141\u0142\u0152\u0153\u015a-\u015f\u0160"
    "\u0161\u0164\u0165\u0178-\u017e\u0192\u02c6\u02c7\u02d8\u02db\u02dc\u02dd"
    "\u0402-\u040f\u0452-\u045f\u0490\u0491\u2013-\u203a\u20ac\u2116\u2122"
)
# Mojibake is made by a system, not by a hand: a text that has it has it from the start.
# Looking only there keeps a long article in a Latin script (an accented letter every
# thirty characters, each one a place the hint must be tried) to a few microseconds.
_LOOK = 512
_LEADS = "\u00c2-\u00f4\u0102\u0106\u010c\u010e\u0139\u0413-\u0415\u0420\u0421"
# One character class first, the pair checked behind it: the regex engine then skips
# through text on that class alone, three times faster than an alternation.
_MOJIBAKE_HINT = re.compile(
    f"[\\x80-\\x9f{_LEADS}\u0432]"
    f"(?:(?<=[\\x80-\\x9f])|(?<=\u0432)\u0402|(?<=[{_LEADS}])[{_CONTINUATION}])"
)


@dataclass(frozen=True)
class Reading:
    """How to read a document: the codec, and what to tell the user if a label was wrong."""

    encoding: str
    notice: str | None = None
    exact: bool = False  # known to decode as `encoding` with nothing replaced


def read_encoding(body: bytes, content_type: str | None = None, *, html: bool = False) -> Reading:
    """The encoding `body` is in: as declared (HTTP, BOM, XML declaration or, for `html`,
    <meta charset>) unless that is clearly wrong, else UTF-8, else what chardet finds."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return Reading(encoding)
    if body[:2] in (b"<\x00", b"\x00<"):  # UTF-16 without a BOM (XML 1.0, appendix F)
        return Reading("utf-16-le" if body[:1] == b"<" else "utf-16-be")
    declared = _declarations(body, content_type, html)
    # The fast path, and most of the web: UTF-8 said or unsaid, and so it is.
    if (
        all(codec == "utf-8" for _, _, codec in declared)
        and _valid_utf8(body)
        and (b"\x1b" not in body or not _ISO2022.search(body))
    ):
        return Reading("utf-8", exact=True)
    fitting = [codec for _, _, codec in declared if _fits(body, codec)]
    rejected = [(where, label) for where, label, codec in declared if codec not in fitting]
    if fitting:
        codec = fitting[0]
        if len(set(fitting)) > 1:
            # Two labels that both decode (a server's default ISO-8859-1 over a feed's own
            # windows-1251): the bytes decide, between those two only.
            codec = _detect(body, among=list(dict.fromkeys(fitting))) or codec
            rejected = [(w, label) for w, label, c in declared if c != codec]
    elif _valid_utf8(body) and not _ISO2022.search(body):
        codec = "utf-8"
    else:
        codec = _detect(body) or FALLBACK
    return Reading(codec, _notice(rejected, codec) if rejected else None)


def decode(
    body: bytes, content_type: str | None = None, *, html: bool = False
) -> tuple[str, Reading]:
    """`body` as text, read as `read_encoding` says; a bad byte sequence is one U+FFFD."""
    reading = read_encoding(body, content_type, html=html)
    return _decode_as(body, reading), reading


def _decode_as(body: bytes, reading: Reading) -> str:
    for bom, encoding in _BOMS:
        if body.startswith(bom) and encoding == reading.encoding:
            body = body[len(bom) :]
    text = body.decode(reading.encoding, errors="replace")
    if reading.encoding == "cp1258":
        # Vietnamese in code page 1258 writes tones as combining marks after the letter.
        text = unicodedata.normalize("NFC", text)
    return text


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """HTML bytes as text: BOM, HTTP charset, <meta charset>, UTF-8, else detected."""
    return decode(body, content_type, html=True)[0]


def xml_in_utf8(body: bytes, content_type: str | None = None) -> tuple[bytes, Reading]:
    """`body` as UTF-8 that says so, for lxml and feedparser, and how it was read.

    A document that is valid UTF-8 and declares nothing else comes back as it is (the fast
    path: one validating pass in C); any other is decoded once and its XML declaration
    made to say UTF-8, so that no parser reads it a second way.
    """
    reading = read_encoding(body, content_type)
    if reading.exact:
        return body, reading  # UTF-8 with no BOM, and nothing in the document says otherwise
    text = _decode_as(body, reading)
    text = _XML_DECL_ENCODING.sub(r'\1"utf-8"', text[:200], count=1) + text[200:]
    return text.encode("utf-8", errors="replace"), reading


def charset_of(content_type: str | None) -> str | None:
    """The charset label a Content-Type header names, if any."""
    m = _HEADER_CHARSET.search(content_type or "")
    return m.group(1) if m else None


def _declarations(body: bytes, content_type: str | None, html: bool) -> list[tuple[str, str, str]]:
    """(where, label, codec) of each declaration, in the order they are believed."""
    found = []
    label = charset_of(content_type)
    if label and (codec := _codec(label)):
        found.append(("the HTTP header", label, codec))
    m = _META_CHARSET.search(body[:4096]) if html else _XML_DECL.match(body[:200])
    if m is not None:
        label = m.group(1).decode("ascii", "replace")
        codec = _codec(label)
        if codec and codec.startswith(("utf-16", "utf-32")):
            codec = "utf-8"  # a declaration that could be read as ASCII is not in UTF-16
        if codec:
            found.append(("its <meta charset>" if html else "its XML declaration", label, codec))
    return found


def _fits(body: bytes, codec: str) -> bool:
    """Whether `body` is plausibly in `codec`: see the module's docstring."""
    if codec != "utf-8" and not body.isascii() and _valid_utf8(body):
        return False
    if not codec.startswith("iso2022") and b"\x1b" in body and _ISO2022.search(body):
        return False  # escape sequences: no other encoding writes ESC in text
    return _mostly_valid(body, codec)


def _mostly_valid(body: bytes, codec: str) -> bool:
    try:
        body.decode(codec)
        return True
    except UnicodeDecodeError:
        pass
    except LookupError:
        return False
    text = body.decode(codec, errors="replace")
    bad = text.count("\ufffd") - (body.count("\ufffd".encode(codec)) if codec == "utf-8" else 0)
    good = len(text) - len(text.encode("ascii", errors="ignore")) - bad
    return bad <= good


def _valid_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _detect(body: bytes, among: list[str] | None = None) -> str | None:
    """chardet's reading of `body` (within `among`, when given), as a decoding codec."""
    import chardet  # milliseconds a document, and models to load: only off the fast path
    from chardet import EncodingEra

    # Not the Mac, DOS and mainframe code pages: no newsroom serves them, and leaving them
    # out makes detection three times faster with every sample still read right. Not
    # prefer_superset: it maps ISO-8859-5 to windows-1251 and ISO-8859-2 to windows-1250,
    # which share letters but not bytes; _DETECTED holds the true supersets.
    eras = EncodingEra.MODERN_WEB | EncodingEra.LEGACY_ISO | EncodingEra.LEGACY_REGIONAL
    found = chardet.detect(
        body,
        max_bytes=_SAMPLE,
        encoding_era=eras,
        compat_names=False,
        include_encodings=among,
    )
    codec = _codec(found.get("encoding") or "")
    codec = _DETECTED.get(codec, codec) if codec else None
    return codec if among is None or codec in among else None


def _notice(rejected: list[tuple[str, str]], codec: str) -> str:
    said = " and ".join(f"{label} ({where})" for where, label in rejected)
    return f"declared as {said}, but the bytes are not: read as {codec}"


def _codec(label: str) -> str | None:
    label = label.strip().lower()
    label = _LABELS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


# --- mojibake that arrives already made -----------------------------------------------------


def repair_mojibake(text: str | None) -> str | None:
    """`text` with mojibake undone where ftfy finds it unambiguous ("CafÃ©" is "Café",
    "â€¦" is "…", a stray C1 control "\x92" is "’"); text with none is returned as it is.

    Only ftfy's encoding repairs run: not its quote uncurling, width folding, ligature
    splitting or normalisation, which change text that was right.
    """
    if not text or text.isascii() or not _MOJIBAKE_HINT.search(text, 0, _LOOK):
        return text
    from ftfy.badness import is_bad

    if not is_bad(text):  # ftfy's own test, thorough but some 30 times slower than the hint
        return text
    import ftfy

    fixed = ftfy.fix_text(text, _ftfy_config())
    # What is left of C1 is a control character no one meant (the feed parsers map the
    # ones Windows-1252 defines to its quotes and dashes): it goes.
    return _C1.sub("", fixed) if _C1.search(fixed) else fixed


@functools.cache
def _ftfy_config() -> Any:
    import ftfy

    return ftfy.TextFixerConfig(
        unescape_html=False,  # already unescaped, once: "&amp;lt;" must stay "&lt;"
        remove_terminal_escapes=False,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        remove_control_chars=False,
        normalization=None,
        explain=False,
    )
