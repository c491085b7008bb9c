"""Pure: the encoding of a document's bytes, as declared, else the legacy code page they read as.

A feed or page with no BOM, no declaration and no HTTP charset is UTF-8 by the rules; when
its bytes are not, it was written in a national code page and the rules give no answer.
Assuming Windows-1252, as feedparser does without chardet, turns Russian, Greek, Turkish or
Arabic into accented Latin nonsense that no search finds. Here each candidate code page reads the bytes, and the one
whose words look most like words wins: no word mixes two alphabets, none has a symbol in
the middle ("mo¿e"), none switches to capitals half-way ("кАК"), Latin words are not made
mostly of accented letters ("ïðèâåò"). Windows-1252 stays the answer unless another reads
clearly better, so Western feeds are read as they were.

Known limits: code pages that differ in a few letters are told apart by those letters
alone. Turkish wins over Western when ş or ğ would otherwise read as þ or ð, so an
undeclared Icelandic document reads as Turkish. Hebrew is not guessed: its letters read as
lower-case Cyrillic in the Cyrillic code pages, as plausible to these rules as Russian.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import re
import unicodedata

DEFAULT = "cp1252"
# Tried in this order; on a tie the earlier wins (KOI8-R before KOI8-U: same Russian).
CANDIDATES = (
    DEFAULT,
    "cp1254",  # Turkish
    "cp1250",  # Central European
    "cp1251",  # Cyrillic (Windows)
    "koi8-r",  # Russian (Unix, older mail and news)
    "koi8-u",  # Ukrainian
    "iso-8859-7",  # Greek
    "cp1256",  # Arabic
)
_SAMPLE = 1000  # words with a non-ASCII letter looked at: plenty to decide, bounded cost
_MARGIN = 0.05  # how much better than Windows-1252 another reading must be, as a share
# A word with a byte above 0x7F: every candidate is ASCII-compatible, so ASCII spaces and
# punctuation bound the same words in all of them and the words can be cut from the bytes.
_WORD = re.compile(rb"(?<![^\s!-/:-@\[-`{-~])[^\s!-/:-@\[-`{-~]*[\x80-\xff][^\s!-/:-@\[-`{-~]*")
# Inside a word these are still part of it (l’État, Jean‑Marc, l·l); any other non-letter is
# a sign of the wrong code page.
_JOINERS = frozenset("’‘'‐‑–·")
# Letters of Icelandic and Faroese only, where a Turkish ş, ğ land in Windows-1252.
_RARE = frozenset("ðþÐÞ")
_UNDEFINED = re.compile("[\ufffd\x80-\x9f]")


def guess_legacy(data: bytes) -> str:
    """The code page that reads `data` (not UTF-8, encoding undeclared) most plausibly."""
    words = b" ".join(m.group() for m in itertools.islice(_WORD.finditer(data), _SAMPLE))
    scores = {name: _implausibility(words.decode(name, errors="replace")) for name in CANDIDATES}
    best = min(CANDIDATES, key=lambda name: scores[name])  # min keeps the first of a tie
    if scores[best] <= scores[DEFAULT] - _MARGIN:
        return best
    return DEFAULT


def undeclared_legacy(body: bytes) -> str | None:
    """The guessed code page of `body` if it names no encoding and is not UTF-8, else None.

    Only 8-bit documents qualify: a BOM, NULs of UTF-16/32, an XML declaration with an
    encoding, or bytes that are valid UTF-8 all leave the document as it is.
    """
    if body.isascii() or b"\x00" in body[:4]:
        return None
    if body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return None
    if re.match(rb"\s*<\?xml[^>]*encoding", body[:200]):
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return guess_legacy(body)
    return None


def in_utf8(body: bytes, encoding: str) -> bytes:
    """`body`, read in `encoding`, as UTF-8 bytes (which is what a document without a
    declaration is taken to be)."""
    return body.decode(encoding, errors="replace").encode("utf-8")


def _implausibility(words: str) -> float:
    """The share of `words` (space-separated) that no language would write."""
    sample = words.split(" ")
    bad = sum(not _plausible(word) for word in sample if word)
    return bad / len(sample) if words else 0.0


def _plausible(word: str) -> bool:
    if _UNDEFINED.search(word):
        return False  # a byte the code page has no character for
    # Quotes and signs around a word («», ¿…?, “”) are not part of it.
    start, end = 0, len(word)
    while start < end and not word[start].isalpha():
        start += 1
    while end > start and not word[end - 1].isalpha():
        end -= 1
    word = word[start:end]
    script = None
    accented = plain = 0
    previous_lower = False
    for ch in word:
        if not ch.isalpha():
            if ch in _JOINERS or unicodedata.category(ch) == "Mn":
                previous_lower = False
                continue
            return False  # a symbol, a control character or U+FFFD inside the word
        if ch in _RARE:
            return False
        this = _script(ch)
        if script is None:
            script = this
        elif this != script:
            return False
        if ch.isupper() and previous_lower:
            return False
        previous_lower = ch.islower()
        if ch.isascii():
            plain += 1
        else:
            accented += 1
    return not (script == "LATIN" and accented > plain and accented + plain >= 4)


@functools.cache
def _script(letter: str) -> str:
    return unicodedata.name(letter, "").split(" ", 1)[0]  # "CYRILLIC SMALL LETTER A"


# --- decoding -------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))  # fmt: skip
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
# Browsers (WHATWG Encoding) read these labels as a superset; so must we, or the bytes
# 0x80-0x9F (curly quotes, dashes, the euro) come out as control characters.
_LABELS = {"iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "l1": "cp1252",
           "ascii": "cp1252", "us-ascii": "cp1252", "iso-8859-9": "cp1254",
           "iso8859-9": "cp1254", "latin5": "cp1254", "gb2312": "gb18030", "gbk": "gb18030",
           "tis-620": "cp874", "euc-kr": "cp949"}  # fmt: skip


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """HTML bytes as text: BOM, HTTP charset, <meta charset>, UTF-8, else a guessed code page."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    declared = None
    if content_type:
        m = _HEADER_CHARSET.search(content_type)
        declared = _codec(m.group(1)) if m else None
    if declared is None:
        m = _META_CHARSET.search(body[:4096])
        declared = _codec(m.group(1).decode("ascii", "replace")) if m else None
        if declared and declared.startswith("utf-16"):
            declared = "utf-8"  # a <meta> that could be read as ASCII cannot be UTF-16
    if declared:
        return body.decode(declared, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode(guess_legacy(body), errors="replace")


def _codec(label: str) -> str | None:
    label = label.strip().lower()
    label = _LABELS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None
