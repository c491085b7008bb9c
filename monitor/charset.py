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
long. It costs about 10 ms a document, so it runs only off the fast path, for documents
that are neither valid UTF-8 nor what they declare.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass

FALLBACK = "cp1252"  # when nothing fits: what browsers assume for the Western web
_SAMPLE = 65536  # bytes the detector reads: plenty for any script, bounded cost
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


@dataclass(frozen=True)
class Reading:
    """How to read a document: the codec, and what to tell the user if a label was wrong."""

    encoding: str
    notice: str | None = None


def read_encoding(body: bytes, content_type: str | None = None, *, html: bool = False) -> Reading:
    """The encoding `body` is in: as declared (HTTP, BOM, XML declaration or, for `html`,
    <meta charset>) unless that is clearly wrong, else UTF-8, else what chardet finds."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return Reading(encoding)
    if body[:2] in (b"<\x00", b"\x00<"):  # UTF-16 without a BOM (XML 1.0, appendix F)
        return Reading("utf-16-le" if body[:1] == b"<" else "utf-16-be")
    declared = _declarations(body, content_type, html)
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
    for bom, encoding in _BOMS:
        if body.startswith(bom) and encoding == reading.encoding:
            body = body[len(bom) :]
    text = body.decode(reading.encoding, errors="replace")
    if reading.encoding == "cp1258":
        # Vietnamese in code page 1258 writes tones as combining marks after the letter.
        text = unicodedata.normalize("NFC", text)
    return text, reading


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
    if reading.encoding == "utf-8" and not body.startswith(codecs.BOM_UTF8):
        m = _XML_DECL.match(body[:200])
        if (m is None or _codec(m.group(1).decode("ascii")) == "utf-8") and _valid_utf8(body):
            return body, reading
    text, _ = decode(body, content_type)
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
    if not codec.startswith("iso2022") and _ISO2022.search(body):
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
    import chardet  # ~10 ms a document and models to load: only here, off the fast path

    # Not prefer_superset: it maps ISO-8859-5 to windows-1251 and ISO-8859-2 to
    # windows-1250, which share letters but not bytes. _DETECTED holds the true supersets.

    found = chardet.detect(body, max_bytes=_SAMPLE, compat_names=False, include_encodings=among)
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
