"""Pure: caption files (WebVTT, SRT, YouTube json3/srv1/srv2/srv3, TTML) → timed transcript segments."""

from __future__ import annotations

import codecs
import html
import json
import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from monitor.errors import ParseError
from monitor.models import Segment

if TYPE_CHECKING:
    from lxml import etree

FORMATS = ("vtt", "srt", "json3", "srv3", "srv2", "srv1", "ttml")

# A cue timing line: `00:01:02.345 --> 00:01:04.000 align:start`. Hours are optional in WebVTT,
# SRT writes a comma, and real files mix both, so one lenient pattern serves the two formats.
_TIME = r"(?:(\d{1,9}):)?(\d{1,2}):(\d{1,2})(?:[.,:](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s.*)?$")
# Tags only: `<c>`, `</c.colorE5E5E5>`, `<v Anna>`, `<00:00:01.234>`, `<font color=...>`. A
# bare `<` followed by a space ("5 < 6") is text, not markup.
_TAG = re.compile(r"<(?:/?[A-Za-z][^<>\n]*|\d[\d:.]*)>")
_ASS = re.compile(r"\{\\[^{}\n]*\}")  # `{\an8}` positioning codes that SRT files carry over
_SPACE = re.compile(r"\s+")


def parse_captions(body: bytes, fmt: str | None = None) -> list[Segment]:
    """Timed segments of a caption file, in time order, each line said once.

    `fmt` is the file's extension as yt-dlp names it (`vtt`, `srt`, `json3`, `srv3`, `ttml`...);
    None sniffs the content. Rolling captions (YouTube's automatic ones, where each cue repeats
    the previous line) are collapsed, so the transcript reads as it is spoken. Anything that is
    not a caption file raises ParseError.
    """
    if not isinstance(body, bytes | bytearray):
        raise ParseError("captions: expected bytes")
    fmt = (fmt or "").lower().lstrip(".") or _sniff(body)
    try:
        if fmt in ("vtt", "webvtt"):
            cues = _text_cues(_decode(body), webvtt=True)
        elif fmt == "srt":
            cues = _text_cues(_decode(body), webvtt=False)
        elif fmt in ("json3", "json"):
            cues = _json3_cues(body)
        elif fmt in ("srv1", "srv2", "srv3", "ttml", "xml", "dfxp"):
            cues = _xml_cues(body)
        else:
            raise ParseError(f"captions: unsupported format {fmt!r}")
    except RecursionError:
        raise ParseError("captions: nested too deeply") from None
    return _roll_up(cues)


def transcript_text(segments: Iterable[Segment]) -> str:
    """The transcript as stored and searched: one segment per line."""
    return "\n".join(s.text for s in segments if s.text)


# --- shared ---------------------------------------------------------------------------------

_Cue = tuple[float, float, list[str]]  # start, end, lines of clean text


def _sniff(body: bytes) -> str:
    head = body[:256].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"WEBVTT"):
        return "vtt"
    if head.startswith(b"{"):
        return "json3"
    if head.startswith(b"<"):
        return "xml"
    if b"-->" in body[:4096]:
        return "srt"
    raise ParseError("captions: not a caption file (no WebVTT header, cue timings, JSON or XML)")


def _decode(body: bytes) -> str:
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = body.decode("utf-16", errors="replace")
    else:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Old SRT files are often Windows-1252; a wrong guess garbles accents, not timing.
            text = body.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    ms = int((frac or "0").ljust(3, "0")[:3])
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + ms / 1000


def _clean(line: str) -> str:
    line = _ASS.sub("", _TAG.sub("", line))
    return _SPACE.sub(" ", html.unescape(line)).strip()


def _lines(raw: Iterable[str]) -> list[str]:
    return [c for c in (_clean(x) for x in raw) if c]


def _roll_up(cues: list[_Cue]) -> list[Segment]:
    """Segments from cues: lines already shown dropped, same-start cues merged, times increasing.

    A rolling cue starts with the lines of the cue before it (YouTube shows two lines and
    scrolls), and a 10 ms cue often repeats the finished line alone; only the new lines count.
    """
    cues = sorted(cues, key=lambda c: c[0])  # stable: ordered files keep their order
    out: list[Segment] = []
    shown: list[str] = []
    for start, end, lines in cues:
        overlap = 0
        for k in range(min(len(lines), len(shown)), 0, -1):
            if lines[:k] == shown[-k:]:
                overlap = k
                break
        fresh = lines[overlap:]
        if not fresh:
            continue
        shown = (shown + fresh)[-8:]
        text = " ".join(fresh)
        end = max(end, start)
        if out and start <= out[-1].start:
            last = out[-1]
            out[-1] = Segment(last.start, max(last.end, end), f"{last.text} {text}")
        else:
            out.append(Segment(start, end, text))
    return out


# --- WebVTT and SRT -------------------------------------------------------------------------


def _text_cues(text: str, *, webvtt: bool) -> list[_Cue]:
    """Cues of a WebVTT or SRT file, read leniently.

    Real files break the rules both ways: YouTube's SRT puts an empty line between the timing
    and the text, and trimmed WebVTT files start a cue on the line after the previous text. So a
    timing line always starts a cue, and an empty line ends one only once it has text.
    """
    if webvtt and not text.lstrip("\ufeff \t\n").startswith("WEBVTT"):
        raise ParseError("captions: not WebVTT (the file does not start with WEBVTT)")
    cues: list[_Cue] = []
    current: tuple[float, float, list[str]] | None = None
    timings = 0

    def close() -> None:
        if current is not None:
            cues.append((current[0], current[1], _lines(current[2])))

    for line in text.split("\n"):
        m = _TIMING.match(line) if "-->" in line else None
        if m:
            timings += 1
            if current is not None and current[2] and current[2][-1].strip().isdigit():
                current[2].pop()  # the next cue's number, when no blank line came before it
            close()
            g = m.groups()
            current = (_seconds(*g[0:4]), _seconds(*g[4:8]), [])
        elif current is not None:
            if line == "":
                if any(x.strip() for x in current[2]):
                    close()
                    current = None
            else:
                current[2].append(line)
    close()
    if not timings and not webvtt and text.strip():
        raise ParseError("captions: not SRT (no cue timing line such as 00:00:01,000 --> ...)")
    return cues


# --- YouTube json3 --------------------------------------------------------------------------


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ParseError(f"captions: {where} is not a number")
    try:
        n = float(value)
    except ValueError:
        raise ParseError(f"captions: {where} is not a number") from None
    if not math.isfinite(n) or n < 0:
        raise ParseError(f"captions: {where} is out of range")
    return n


def _json3_cues(body: bytes) -> list[_Cue]:
    try:
        doc = json.loads(_decode(body))
    except ValueError as e:
        raise ParseError(f"captions: not JSON: {e}") from None
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise ParseError("captions: json3 without an `events` list")
    cues: list[_Cue] = []
    for i, ev in enumerate(events):
        if not isinstance(ev, dict) or not isinstance(ev.get("segs"), list):
            continue  # window and pen definitions carry no text
        start = _number(ev.get("tStartMs", 0), f"events[{i}].tStartMs") / 1000
        dur = _number(ev.get("dDurationMs", 0), f"events[{i}].dDurationMs") / 1000
        text = "".join(
            s["utf8"] for s in ev["segs"] if isinstance(s, dict) and isinstance(s.get("utf8"), str)
        )
        cues.append((start, start + dur, _lines(text.split("\n"))))
    return cues


# --- XML: YouTube srv1/srv2/srv3 and TTML ---------------------------------------------------

_CLOCK = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d+))?(?::(\d+(?:\.\d+)?))?$")
_OFFSET = re.compile(r"^(\d+(?:\.\d+)?)(h|m|s|ms|f|t)$")


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _xml_cues(body: bytes) -> list[_Cue]:
    from monitor.xmlsafe import parse_xml

    root = parse_xml(bytes(body))
    kind = _local(root.tag)
    if kind == "transcript":  # srv1: <text start="1.2" dur="3.4">, seconds, text escaped twice
        return [
            _xml_cue(el, "start", "dur", 1.0, html.unescape(el.text or ""))
            for el in root.iter("{*}text")
        ]
    if kind == "timedtext":  # srv2 (<text t d>) and srv3 (<body><p t d><s>), milliseconds
        els = [el for el in root.iter() if _local(el.tag) in ("text", "p")]
        return [_xml_cue(el, "t", "d", 1000.0, _itertext(el)) for el in els]
    if kind == "tt":
        return _ttml_cues(root)
    raise ParseError(f"captions: unknown XML caption format <{kind}>")


def _itertext(el: etree._Element) -> str:
    """Text of an element and its descendants, `<br/>` as a line break."""
    parts: list[str] = []
    for node in el.iter():
        if _local(node.tag) == "br":
            parts.append("\n")
        if node.text:
            parts.append(node.text)
        if node is not el and node.tail:
            parts.append(node.tail)
    return "".join(parts)


def _xml_cue(el: etree._Element, start_attr: str, dur_attr: str, unit: float, text: str) -> _Cue:
    start = _number(el.get(start_attr, "0"), f"@{start_attr}") / unit
    dur = _number(el.get(dur_attr, "0"), f"@{dur_attr}") / unit
    return (start, start + dur, _lines(text.split("\n")))


def _ttml_time(value: str | None, frame_rate: float, tick_rate: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    m = _CLOCK.match(value)
    if m:
        h, mi, s, frac, frames = m.groups()
        t = int(h) * 3600 + int(mi) * 60 + int(s) + float(f"0.{frac}" if frac else 0)
        return t + (float(frames) / frame_rate if frames else 0.0)
    m = _OFFSET.match(value)
    if m:
        n, unit = float(m.group(1)), m.group(2)
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}.get(unit)
        if scale is None:
            scale = 1 / frame_rate if unit == "f" else 1 / tick_rate
        return n * scale
    raise ParseError(f"captions: unreadable TTML time {value[:40]!r}")


def _ttml_cues(root: etree._Element) -> list[_Cue]:
    param = "{http://www.w3.org/ns/ttml#parameter}"
    frame_rate = _number(root.get(f"{param}frameRate", "30"), "ttp:frameRate") or 30.0
    tick_rate = _number(root.get(f"{param}tickRate", "0"), "ttp:tickRate") or frame_rate
    cues: list[_Cue] = []
    for p in root.iter():
        if _local(p.tag) != "p":
            continue
        start = _ttml_time(p.get("begin"), frame_rate, tick_rate)
        if start is None:
            continue  # timing inherited from a <div> or <span>s: rare, left out
        end = _ttml_time(p.get("end"), frame_rate, tick_rate)
        if end is None:
            end = start + (_ttml_time(p.get("dur"), frame_rate, tick_rate) or 0.0)
        cues.append((start, end, _lines(_itertext(p).split("\n"))))
    return cues
