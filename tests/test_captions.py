"""Caption files → timed segments: real YouTube captions, every format, and hostile input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.captions import FORMATS, parse_captions, transcript_text
from monitor.errors import ParseError
from monitor.models import Segment
from tests.conftest import FIXTURES

INFO_JSON = "youtube/yt-dlp-info-json-youtube-2024-anonymized.json"


def texts(segments: list[Segment]) -> list[str]:
    return [s.text for s in segments]


def assert_well_formed(segments: list[Segment]) -> None:
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), "starts must increase"
    assert all(s.end >= s.start for s in segments)
    lines = texts(segments)
    repeated = [a for a, b in zip(lines, lines[1:], strict=False) if a == b]
    assert not repeated, f"line repeated: {repeated[:3]}"


# --- real captions --------------------------------------------------------------------------


def test_youtube_dl_asr_excerpt_says_each_line_once(realdata: Path):
    body = (realdata / "youtube/webvtt-youtube-asr-excerpt-youtube-dl.vtt").read_bytes()
    segments = parse_captions(body, "vtt")
    assert texts(segments) == ["yeah", "what", "this will happen is I'm telling"]
    assert [s.start for s in segments] == [286.07, 286.47, 304.08]
    assert_well_formed(segments)


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_rolling_srt_from_real_info_json_keeps_every_word_and_no_repeated_line(
    realdata: Path, lang: str
):
    data = json.loads((realdata / INFO_JSON).read_text(encoding="utf-8"))
    raw = data["requested_subtitles"][lang]["data"]
    segments = parse_captions(raw.encode("utf-8"), "srt")
    assert_well_formed(segments)
    transcript = transcript_text(segments)
    lines = transcript.split("\n")
    # Only sound tags recur (three separate bursts of "[Applause]" in the English track).
    recurring = {line for line in lines if lines.count(line) > 1}
    assert all(re.fullmatch(r"\[\w+\]", line) for line in recurring), recurring
    # Nothing spoken is lost: every line of text in the file is in the transcript.
    spoken = {
        " ".join(line.split())
        for line in raw.split("\n")
        if line.strip() and "-->" not in line and not line.strip().isdigit()
    }
    assert spoken <= set(lines)
    # The rolling file shows each line about twice; the transcript once.
    assert len(lines) < len([x for x in raw.split("\n") if x.strip() and "-->" not in x]) / 1.8


def test_real_english_asr_starts_where_the_file_says(realdata: Path):
    data = json.loads((realdata / INFO_JSON).read_text(encoding="utf-8"))
    segments = parse_captions(data["requested_subtitles"]["en"]["data"].encode(), "srt")
    assert segments[0] == Segment(1.12, 4.03, "what's up shinas wait wrong Channel when")
    assert segments[1].text == "I wheelie I rely on my rear brake a lot"
    assert segments[1].start == pytest.approx(4.04)
    assert segments[-1].text == "wheelies"


def test_current_youtube_asr_vtt_with_ten_millisecond_cues_reads_as_spoken():
    body = (FIXTURES / "video/zg40FHOAqC0.en.vtt").read_bytes()
    segments = parse_captions(body, "vtt")
    assert texts(segments) == [
        "Jupiter once wandered deep into",
        "the inner solar system, a giant on",
        "the move. It disrupted rocks and",
        "shaped Mars, and it may have helped",
        "Earth form. Without it, life on",
        "Earth might not even exist.",
        "Thanks, big guy.",
    ]
    assert segments[3].start == pytest.approx(7.8)
    assert_well_formed(segments)


# --- WebVTT ---------------------------------------------------------------------------------

VTT = """\ufeffWEBVTT - a title

NOTE written by hand: a --> in a note is not allowed, so none here

STYLE
::cue { color: lime }

intro
00:01.000 --> 00:04.500 line:0 position:20%
<v Anna>Good evening &amp; welcome.</v>
Tonight: <i>NATO</i> troops

2
00:00:05.250 --> 00:00:07.000
5 < 6 &lt;tag&gt;&nbsp;kept
"""


def test_webvtt_blocks_identifiers_voices_and_entities():
    segments = parse_captions(VTT.encode("utf-8"), "vtt")
    assert segments == [
        Segment(1.0, 4.5, "Good evening & welcome. Tonight: NATO troops"),
        Segment(5.25, 7.0, "5 < 6 <tag> kept"),
    ]


def test_webvtt_with_crlf_and_hours_over_99():
    body = b"WEBVTT\r\n\r\n100:00:01.000 --> 100:00:02.000\r\nlate\r\n"
    assert parse_captions(body, "vtt") == [Segment(360001.0, 360002.0, "late")]


def test_webvtt_header_only_is_an_empty_transcript():
    assert parse_captions(b"WEBVTT\n\nNOTE nothing said\n", "vtt") == []


def test_file_that_is_not_webvtt_is_refused():
    with pytest.raises(ParseError, match="WEBVTT"):
        parse_captions(b"<html><body>Sign in to confirm you're not a bot</body></html>", "vtt")


def test_cues_with_the_same_start_merge_and_unordered_cues_are_sorted():
    body = (
        b"WEBVTT\n\n00:00:05.000 --> 00:00:06.000\nlater\n\n"
        b"00:00:01.000 --> 00:00:02.000\nfirst speaker\n\n"
        b"00:00:01.000 --> 00:00:03.000\nsecond speaker\n"
    )
    assert parse_captions(body, "vtt") == [
        Segment(1.0, 3.0, "first speaker second speaker"),
        Segment(5.0, 6.0, "later"),
    ]


# --- SRT ------------------------------------------------------------------------------------


def test_srt_in_windows_1252_with_tags_and_positioning_codes():
    body = (
        "1\r\n00:00:01,000 --> 00:00:02,500\r\n{\\an8}<i>Élysée</i> statement\r\n\r\n"
        '2\r\n00:00:03,000 --> 00:00:04,000\r\n<font color="#fff">Merci</font>\r\n'
    ).encode("cp1252")
    assert parse_captions(body, "srt") == [
        Segment(1.0, 2.5, "Élysée statement"),
        Segment(3.0, 4.0, "Merci"),
    ]


def test_srt_without_blank_lines_between_cues_drops_the_cue_numbers():
    body = b"1\n00:00:01,000 --> 00:00:02,000\nfirst\n2\n00:00:02,000 --> 00:00:03,000\nsecond\n"
    assert texts(parse_captions(body, "srt")) == ["first", "second"]


def test_text_without_cue_timings_is_not_srt():
    with pytest.raises(ParseError, match="SRT"):
        parse_captions(b"just some words\nand more", "srt")


# --- YouTube json3, srv1/2/3, TTML ----------------------------------------------------------


def test_json3_asr_words_and_appended_newlines():
    doc = {
        "wireMagic": "pb3",
        "events": [
            {"tStartMs": 0, "dDurationMs": 60000, "id": 1, "wpWinPosId": 1, "wsWinStyleId": 1},
            {
                "tStartMs": 160,
                "dDurationMs": 4470,
                "wWinId": 1,
                "segs": [
                    {"utf8": "NATO", "acAsrConf": 0},
                    {"utf8": " troops", "tOffsetMs": 320, "acAsrConf": 0},
                ],
            },
            {"tStartMs": 2230, "dDurationMs": 2400, "wWinId": 1, "aAppend": 1, "segs": [{"utf8": "\n"}]},
            {
                "tStartMs": 2240,
                "dDurationMs": 3000,
                "wWinId": 1,
                "segs": [{"utf8": "in"}, {"utf8": " Ukraine", "tOffsetMs": 400}],
            },
        ],
    }  # fmt: skip
    segments = parse_captions(json.dumps(doc).encode(), "json3")
    assert segments == [Segment(0.16, 4.63, "NATO troops"), Segment(2.24, 5.24, "in Ukraine")]


def test_srv3_paragraphs_with_word_spans():
    body = b"""<?xml version="1.0" encoding="utf-8" ?><timedtext format="3">
<head><ws id="0"/><wp id="0"/></head><body><w t="0" id="1" wp="1" ws="1"/>
<p t="160" d="2070" w="1"><s ac="0">hello</s><s t="320" ac="0"> everyone</s></p>
<p t="2230" d="10" w="1" a="1">
</p>
<p t="2240" d="2000" w="1"><s>I&#39;m here</s></p>
</body></timedtext>"""
    assert parse_captions(body, "srv3") == [
        Segment(0.16, 2.23, "hello everyone"),
        Segment(2.24, 4.24, "I'm here"),
    ]


def test_srv1_text_is_unescaped_once_more():
    body = b"""<?xml version="1.0" encoding="utf-8" ?><transcript>
<text start="0.5" dur="1.5">it&amp;#39;s &amp;quot;fine&amp;quot;</text>
<text start="2" dur="1">next</text></transcript>"""
    assert parse_captions(body, "srv1") == [
        Segment(0.5, 2.0, 'it\'s "fine"'),
        Segment(2.0, 3.0, "next"),
    ]


def test_ttml_clock_and_offset_times_and_line_breaks():
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter"
    ttp:frameRate="25" xml:lang="en"><body><div>
<p begin="00:00:01.500" end="00:00:03.000">first<br/>line</p>
<p begin="4s" dur="1500ms">second</p>
<p begin="00:00:06:05" end="00:00:07:00">third</p>
</div></body></tt>"""
    assert parse_captions(body, "ttml") == [
        Segment(1.5, 3.0, "first line"),
        Segment(4.0, 5.5, "second"),
        Segment(6.2, 7.0, "third"),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nv\n", "v"),
        (b"1\n00:00:01,000 --> 00:00:02,000\ns\n", "s"),
        (b'{"events":[{"tStartMs":1000,"dDurationMs":1000,"segs":[{"utf8":"j"}]}]}', "j"),
        (b'<transcript><text start="1" dur="1">x</text></transcript>', "x"),
    ],
)
def test_format_is_sniffed_when_not_given(body: bytes, expected: str):
    assert parse_captions(body) == [Segment(1.0, 2.0, expected)]


# --- hostile input --------------------------------------------------------------------------


def test_xml_entity_declarations_are_refused():
    body = b"""<?xml version="1.0"?><!DOCTYPE tt [<!ENTITY a "aaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<tt xmlns="http://www.w3.org/ns/ttml"><body><div><p begin="1s" end="2s">&b;</p></div></body></tt>"""
    with pytest.raises(ParseError, match="entity"):
        parse_captions(body, "ttml")


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2, 3]",
        b'{"events": {"not": "a list"}}',
        b'{"events": [{"tStartMs": NaN, "segs": [{"utf8": "x"}]}]}',
        b'{"events": [{"tStartMs": -5, "segs": [{"utf8": "x"}]}]}',
        b'{"events": [{"tStartMs": "soon", "segs": [{"utf8": "x"}]}]}',
        b'{"events": [{"tStartMs": [1], "segs": []}]}',
        b"[" * 100_000 + b"]" * 100_000,
        b"{not json",
    ],
)
def test_malformed_json3_is_a_parse_error(body: bytes):
    with pytest.raises(ParseError):
        parse_captions(body, "json3")


@pytest.mark.parametrize(
    "body",
    [
        b"<html><p>not captions</p></html>",
        b"<transcript><text start='soon'>x</text></transcript>",
        b"<tt xmlns='http://www.w3.org/ns/ttml'><body><p begin='yesterday'>x</p></body></tt>",
        b"<timedtext><body><p t='1e999' d='1'>x</p></body></timedtext>",
        b"<" * 10,
    ],
)
def test_malformed_xml_captions_are_a_parse_error(body: bytes):
    with pytest.raises(ParseError):
        parse_captions(body, "ttml")


def test_unknown_format_and_non_bytes_are_parse_errors():
    with pytest.raises(ParseError, match="unsupported"):
        parse_captions(b"whatever", "ass")
    with pytest.raises(ParseError):
        parse_captions("WEBVTT", "vtt")  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="not a caption file"):
        parse_captions(b"\x00\x01binary garbage")


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=400), fmt=st.sampled_from([*FORMATS, None]))
def test_any_bytes_give_segments_or_a_parse_error(body: bytes, fmt: str | None):
    try:
        segments = parse_captions(body, fmt)
    except ParseError:
        return
    assert all(isinstance(s, Segment) for s in segments)


_CUE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="<>&{}\\-"),
    min_size=1,
    max_size=30,
).filter(lambda t: t.strip() != "")


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_CUE_TEXT, min_size=1, max_size=12, unique_by=lambda t: " ".join(t.split())))
def test_any_rolling_caption_file_reads_back_each_new_line_once_in_time_order(lines: list[str]):
    def ts(t: float) -> str:
        return f"00:{int(t // 60):02d}:{t % 60:06.3f}"

    out = ["WEBVTT", ""]
    previous = " "
    for i, line in enumerate(lines):
        out += [f"{ts(i * 2)} --> {ts(i * 2 + 1.99)}", previous, line, ""]
        out += [f"{ts(i * 2 + 1.99)} --> {ts(i * 2 + 2)}", line, " ", ""]
        previous = line
    segments = parse_captions("\n".join(out).encode("utf-8"), "vtt")
    assert_well_formed(segments)
    assert texts(segments) == [" ".join(line.split()) for line in lines]
    assert [s.start for s in segments] == [i * 2 for i in range(len(lines))]
