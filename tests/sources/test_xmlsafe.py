"""xmlsafe: hostile XML is refused before libxml2 or feedparser expands anything."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.xmlsafe import (
    MAX_DEPTH,
    MalformedXML,
    UnsafeXML,
    check_safe,
    nesting_depth,
    parse_xml,
)
from tests.origin import QuietServer

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss><channel><item><title>&lol9;</title></item></channel></rss>"""

QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]><rss><channel><item><title>'
    + b"&a;" * 20_000
    + b"</title></item></channel></rss>"
)

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss><channel><item><title>&xxe;</title></item></channel></rss>"""


def xxe_http(url: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{url}">]>\n'
        "<rss><channel><item><title>&xxe;</title></item></channel></rss>"
    ).encode()


def parameter_entity(url: str) -> bytes:
    return f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]><r/>'.encode()


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        type(self).hits.append(self.path)
        body = b'<!ENTITY leak "LEAKED">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that records every request it gets."""
    hits: list[str] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_unsafe_and_malformed_are_parse_errors():
    assert issubclass(UnsafeXML, ParseError) and issubclass(MalformedXML, ParseError)


def test_billion_laughs_is_refused_quickly():
    start = time.perf_counter()
    with pytest.raises(UnsafeXML, match="entity declarations"):
        parse_xml(BILLION_LAUGHS)
    assert time.perf_counter() - start < 5.0  # refused before expanding: expanded, it never ends


def test_quadratic_blowup_is_refused():
    with pytest.raises(UnsafeXML):
        parse_xml(QUADRATIC)


def test_external_file_entity_is_refused_and_never_read():
    with pytest.raises(UnsafeXML) as err:
        parse_xml(XXE_FILE)
    assert "root:" not in str(err.value)


def test_external_http_entity_is_refused_without_a_request(origin):
    url, hits = origin
    for body in (xxe_http(url + "/xxe"), parameter_entity(url + "/pe")):
        with pytest.raises(UnsafeXML):
            parse_xml(body)
        with pytest.raises(UnsafeXML):
            check_safe(body)
    assert hits == []


def test_external_dtd_without_entities_parses_and_is_not_fetched(origin):
    # RSS 0.91 feeds carry a DOCTYPE pointing at Netscape's DTD; it must not be loaded.
    url, hits = origin
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        f' "{url}/rss-0.91.dtd"><rss version="0.91"><channel><title>t</title></channel></rss>'
    ).encode()
    assert parse_xml(body).find("channel/title").text == "t"
    assert hits == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_entity_declarations_are_found_in_utf16_and_utf32(encoding: str):
    text = BILLION_LAUGHS.decode().replace('<?xml version="1.0"?>', "")
    body = text.encode(encoding)
    if encoding.endswith(("-le", "-be")):
        assert body[:2] not in (b"\xff\xfe", b"\xfe\xff")  # no BOM: found by sniffing "<"
    with pytest.raises(UnsafeXML):
        parse_xml(body)
    with pytest.raises(UnsafeXML):
        check_safe(body)


def test_entity_declarations_are_found_in_a_declared_utf7_document():
    # UTF-7 writes "<" as "+ADw-", hiding "<!ENTITY" from a byte search.
    body = (
        b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE r +AFs-+ADw-!ENTITY x SYSTEM '
        b'"file:///etc/passwd"+AD4-+AF0-+AD4-<r>&x;</r>'
    )
    assert "<!ENTITY" in body.decode("utf-7")
    with pytest.raises(UnsafeXML):
        parse_xml(body)
    with pytest.raises(UnsafeXML):
        check_safe(body)


def test_ebcdic_documents_are_refused():
    body = '<?xml version="1.0" encoding="IBM037"?><r/>'.encode("cp037")
    with pytest.raises(UnsafeXML, match="EBCDIC"):
        parse_xml(body)


def test_well_formed_utf16_document_parses():
    body = (
        '<?xml version="1.0" encoding="utf-16"?><rss><channel><title>Привет</title></channel></rss>'
    )
    assert parse_xml(body.encode("utf-16")).find("channel/title").text == "Привет"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 600, 100_000])
def test_absurd_nesting_is_refused(depth: int):
    body = b"<a>" * depth + b"</a>" * depth
    with pytest.raises(UnsafeXML, match="levels deep"):
        parse_xml(body)
    with pytest.raises(UnsafeXML, match="levels deep"):
        check_safe(body)


def test_reasonable_nesting_is_fine():
    body = b"<a>" * 100 + b"x" + b"</a>" * 100
    assert parse_xml(body).tag == "a"
    check_safe(body)


def test_unclosed_html_in_a_broken_feed_does_not_count_as_nesting():
    item = b"<item><title>x&nbsp;</title><description><p>a<br>b<img src=x><p>c</description></item>"
    body = b"<rss><channel>" + item * 1000 + b"</channel>"
    assert nesting_depth(body) < 10
    check_safe(body)


def test_cdata_and_comments_do_not_count_as_nesting():
    body = b"<a><![CDATA[" + b"<b>" * 1000 + b"]]><!--" + b"<c>" * 1000 + b"--></a>"
    assert nesting_depth(body) == 1


@pytest.mark.parametrize(
    "body",
    [b"<![CDATA[" * 500_000, b"<!--" * 1_000_000, b"<a" * 1_000_000, b"<" * 3_000_000],
    ids=["open-cdata", "open-comments", "unclosed-tags", "bare-lt"],
)
def test_nesting_scan_stays_linear_on_hostile_input(body: bytes):
    start = time.perf_counter()
    nesting_depth(body)
    # Linear takes well under a second; quadratic on these 3 MB would take hours. The bound
    # is loose so that a machine busy with other work does not fail a linear scan.
    assert time.perf_counter() - start < 10.0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x01\x02garbage\xff\xfe",
        b"not xml at all",
        b"<rss><channel><item><title>trunc",
        b"<rss><channel></rss>",
        b"<r>&undefined;</r>",
    ],
    ids=["empty", "garbage", "text", "truncated", "mismatched", "entity"],
)
def test_broken_documents_are_malformed_xml(body: bytes):
    with pytest.raises(MalformedXML):
        parse_xml(body)


def test_a_bad_byte_in_utf8_is_one_replacement_character_not_a_broken_document():
    # lxml refuses the whole document for one invalid sequence; it is read, and only that
    # sequence is lost.
    body = '<?xml version="1.0" encoding="utf-8"?><r>Гаага \udcc3( Гаага</r>'
    root = parse_xml(body.encode("utf-8", "surrogateescape"))
    assert root.text == "Гаага \ufffd( Гаага"


def test_error_says_where():
    with pytest.raises(MalformedXML, match="line 3"):
        parse_xml(b"<rss>\n<channel>\n<title>x</titel>\n</channel></rss>")


def test_leading_blank_lines_before_the_declaration_are_forgiven():
    body = b"\n\n\r\n  <?xml version='1.0' encoding='utf-8'?><rss/>"
    assert parse_xml(body).tag == "rss"
    assert parse_xml(b"\xef\xbb\xbf\n" + body.lstrip()).tag == "rss"


def test_base_url_is_the_document_url_for_xml_base():
    root = parse_xml(b'<feed xml:base="/blog/"><entry/></feed>', base_url="https://ex.org/f.xml")
    assert root[0].base == "https://ex.org/blog/"


def test_comments_do_not_split_text():
    assert parse_xml(b"<t>before<!-- note -->after</t>").text == "beforeafter"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_parse_error(body: bytes):
    with contextlib.suppress(ParseError):
        parse_xml(body)
    with contextlib.suppress(UnsafeXML):
        check_safe(body)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="<>/!-[]?ab &;\"'=\n", max_size=300))
def test_markup_soup_parses_or_raises_parse_error(text: str):
    for body in (text.encode(), text.encode("utf-16")):
        with contextlib.suppress(ParseError):
            parse_xml(body)
        nesting_depth(body)
