"""The one place XML is parsed: lxml with entities, DTDs and network off, hostile input refused."""

from __future__ import annotations

import codecs
import re

from lxml import etree

from monitor.charset import charset_of, xml_in_utf8
from monitor.errors import ParseError

# libxml2's own limit without huge_tree; the scan before feedparser uses the same number so
# both paths refuse the same documents.
MAX_DEPTH = 256


class UnsafeXML(ParseError):
    """A document refused before parsing: entity declarations, absurd nesting, unreadable encoding."""


class MalformedXML(ParseError):
    """A document that is not well-formed XML; a lenient parser may still read it."""


_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)
_ENTITY_DECL_STR = re.compile(r"<!ENTITY", re.I)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_UTF8_LABELS = ("utf-8", "utf8", "us-ascii", "ascii")
_UTF32_BOMS = {b"\xff\xfe\x00\x00": "utf-32-le", b"\x00\x00\xfe\xff": "utf-32-be"}
_EBCDIC = b"\x4c\x6f\xa7\x94"  # "<?xm" in EBCDIC
_ASCII_PROBE = bytes(range(0x20, 0x7F))  # decodes to itself in ASCII-compatible encodings


def _transcoded(body: bytes) -> str | None:
    """The document as text when its encoding is not ASCII-compatible, else None.

    Byte searches see `<!ENTITY` in UTF-8, Latin-1, KOI8-R...; UTF-16/32 (with or without a
    BOM) and declared encodings such as UTF-7 hide it, so those are decoded first.
    """
    head = body[:4]
    if head in _UTF32_BOMS:
        return body[4:].decode(_UTF32_BOMS[head], errors="replace")
    if head[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", errors="replace")
    if head[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", errors="replace")
    if b"\x00" in head:
        # No BOM: UTF-16/32 all the same when NULs pad the first character, whatever it is
        # ("<" per XML 1.0 appendix F, or a newline libxml2 rejects but feedparser may not).
        if head[1:4] == b"\x00\x00\x00":
            return body.decode("utf-32-le", errors="replace")
        if head[:3] == b"\x00\x00\x00":
            return body.decode("utf-32-be", errors="replace")
        enc = "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
        return body.decode(enc, errors="replace")
    if head == _EBCDIC:
        raise UnsafeXML("EBCDIC-encoded XML is not supported")
    m = _DECLARED.match(body[3:] if body.startswith(codecs.BOM_UTF8) else body)
    if not m:
        return None
    name = m.group(1).decode("ascii")
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None  # libxml2 will reject it or read it as ASCII-compatible; bytes suffice
    try:
        if _ASCII_PROBE.decode(codec.name) == _ASCII_PROBE.decode("ascii"):
            return None
    except UnicodeError:
        pass
    return body.decode(codec.name, errors="replace")


def check_entities(body: bytes) -> None:
    """Raise UnsafeXML if the document declares entities (billion laughs, XXE), in any encoding.

    Entity declarations only do anything inside a DOCTYPE, and no feed or sitemap needs one,
    so any `<!ENTITY` at all is refused: cheaper and safer than finding the DTD's end.
    """
    m = _ENTITY_DECL.search(body)
    if m:
        raise UnsafeXML(f"refusing XML with entity declarations (<!ENTITY at byte {m.start()})")
    text = _transcoded(body)
    if text is not None and _ENTITY_DECL_STR.search(text):
        raise UnsafeXML("refusing XML with entity declarations (in a non-ASCII encoding)")


_TOKEN = re.compile(rb"<!\[CDATA\[|<!--|<(/?)([A-Za-z_][^\s/<>]*)[^<>]*?(/?)>")
_VOID = frozenset(
    b"area base br col embed hr img input link meta param source track wbr".split()
)  # HTML left unclosed inside broken feeds must not count as nesting


def nesting_depth(body: bytes, limit: int = MAX_DEPTH) -> int:
    """Deepest element nesting, stopping once past `limit`; tolerant of broken markup.

    Linear in the size of the document (the regex never backtracks past the next `<`, and
    CDATA and comments are skipped with find), so a hostile document cannot make it slow.
    A close tag pops back to its matching open tag, as HTML parsers do, so unclosed tags in
    broken feeds do not add up.
    """
    stack: list[bytes] = []
    deepest = 0
    pos = 0
    search = _TOKEN.search
    while True:
        m = search(body, pos)
        if m is None:
            return deepest
        token = m.group(0)
        if token == b"<![CDATA[" or token == b"<!--":
            end = body.find(b"]]>" if token == b"<![CDATA[" else b"-->", m.end())
            if end < 0:
                return deepest
            pos = end + 3
            continue
        pos = m.end()
        closing, name, selfclosing = m.group(1), m.group(2), m.group(3)
        if closing:
            if name in stack:
                while stack.pop() != name:
                    pass
        elif not selfclosing and name.lower() not in _VOID:
            stack.append(name)
            if len(stack) > deepest:
                deepest = len(stack)
                if deepest > limit:
                    return deepest


def check_safe(body: bytes) -> None:
    """Raise UnsafeXML unless `body` is safe to give a lenient parser such as feedparser."""
    check_entities(body)
    text = _transcoded(body)
    scan = text.encode("utf-8") if text is not None else body
    if nesting_depth(scan) > MAX_DEPTH:
        raise UnsafeXML(f"refusing XML nested more than {MAX_DEPTH} levels deep")


def _strip_leading_space(body: bytes) -> bytes:
    # "XML declaration allowed only at the start of the document" is a common server bug
    # (blank lines printed before <?xml); dropping them is safe, but only for 8-bit text:
    # stripping a space from BOM-less UTF-16 would misalign every character.
    bom = body.startswith(codecs.BOM_UTF8)
    rest = body[3:] if bom else body
    if rest[:1] not in (b" ", b"\t", b"\r", b"\n"):
        return body
    stripped = rest.lstrip()
    if stripped[:1] == b"<" and stripped[1:2] != b"\x00":
        return stripped
    return body


def parse_xml(
    body: bytes,
    *,
    base_url: str | None = None,
    content_type: str | None = None,
    notices: list[str] | None = None,
) -> etree._Element:
    """The root element of `body`; UnsafeXML or MalformedXML (both ParseError) otherwise.

    `base_url` becomes the document URL, so `element.base` resolves xml:base against it.
    The encoding is monitor.charset's reading of the HTTP `content_type`, BOM, declaration
    and bytes; a label that reading set aside is added to `notices`. A document that says
    UTF-8, or nothing, goes to lxml as it is: lxml validates UTF-8 itself, and only a
    document it refuses is read again.
    """
    if not isinstance(body, bytes | bytearray):
        raise TypeError("parse_xml takes bytes, so the document's own encoding is honoured")
    body = bytes(body)
    check_entities(body)
    if not says_utf8(body, content_type):
        body = _readable(body, content_type, notices)
    try:
        return _parse(body, base_url)
    except MalformedXML:
        readable = _readable(body, content_type, notices)
        if readable == body:
            raise
        return _parse(readable, base_url)


def says_utf8(body: bytes, content_type: str | None = None) -> bool:
    """Whether HTTP and the XML declaration name UTF-8 (or ASCII), or nothing at all."""
    label = charset_of(content_type)
    if label is not None and label.lower() not in _UTF8_LABELS:
        return False
    m = _DECLARED.match(body[:200])
    return m is None or m.group(1).decode("ascii").lower() in _UTF8_LABELS


def _readable(body: bytes, content_type: str | None, notices: list[str] | None) -> bytes:
    readable, reading = xml_in_utf8(body, content_type)
    if reading.notice and notices is not None and reading.notice not in notices:
        notices.append(reading.notice)
    return readable


def _parse(body: bytes, base_url: str | None) -> etree._Element:
    body = _strip_leading_space(body)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        # Not collect_ids=False: in lxml 6 it makes libxml2 try to load external DTDs.
    )
    try:
        root = etree.fromstring(body, parser, base_url=base_url)
    except etree.XMLSyntaxError as e:
        msg = str(e.msg if e.msg else e)
        if "depth" in msg.lower():
            raise UnsafeXML(f"refusing XML nested more than {MAX_DEPTH} levels deep") from None
        raise MalformedXML(f"not well-formed XML: {msg}") from None
    except (etree.LxmlError, ValueError) as e:
        raise MalformedXML(f"not well-formed XML: {e}") from None
    if root is None:
        raise MalformedXML("not well-formed XML: no root element")
    return root
