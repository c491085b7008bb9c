"""Snippets with matched words marked, and the second of a video where the query is said."""

from __future__ import annotations

import time
import unicodedata
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.query import parse_query, split_tokens
from monitor.snippet import _word_re, snippet, transcript_offset
from monitor.text import fold

TEXT = (
    "Moscow said on Monday that deploying NATO troops to Ukraine would provoke "
    "a direct response. The statement came after a summit in Paris where leaders discussed "
    "support, budgets, long-range weapons, air defence, training missions and reconstruction "
    "of the energy grid before winter."
)


def snip(query: str, width: int = 30, **fields: str | None) -> str:
    return snippet(parse_query(query), fields, width)


# --- snippet ----------------------------------------------------------------------------------


def test_marks_matched_words_in_a_window_with_ellipses_where_cut() -> None:
    assert snip("nato troops ukraine", width=8, text=TEXT) == (
        "... that deploying [NATO] [troops] to [Ukraine] would provoke ..."
    )


def test_the_texts_own_brackets_are_never_taken_for_marks() -> None:
    text = "[UPDATE 2] Kremlin: NATO troops in Ukraine [would be] targets [Music]"
    assert snip("nato troops", text=text) == (
        "(UPDATE 2) Kremlin: [NATO] [troops] in Ukraine (would be) targets (Music)"
    )
    assert snip("kyiv", text="[Music] no match here") == "(Music) no match here"


def test_short_field_is_shown_whole_without_ellipses() -> None:
    assert snip("macron", title="Macron meets Zelensky.") == "[Macron] meets Zelensky."


def test_window_never_holds_more_than_width_words() -> None:
    out = snip("summit", width=5, text=TEXT)
    assert out.startswith("... ") and out.endswith(" ...")
    assert len(_word_re().findall(out)) == 5
    assert "[summit]" in out


def test_window_at_the_start_keeps_leading_punctuation_and_no_leading_ellipsis() -> None:
    out = snip("nato", width=4, text='"NATO will not send troops," he said.')
    assert out == '"[NATO] will not send ...'


def test_window_is_chosen_where_most_distinct_terms_meet() -> None:
    text = "Ukraine " + "filler " * 50 + "NATO troops arrive in Ukraine today. " + "filler " * 50
    out = snip("nato troops ukraine", width=10, text=text)
    assert "[NATO] [troops] arrive in [Ukraine]" in out


def test_prefix_terms_mark_whole_words_starting_with_the_prefix() -> None:
    out = snip("deploy*", text="They deployed, then redeployed and kept deploying.")
    assert out == "They [deployed], then redeployed and kept [deploying]."


def test_phrase_is_marked_only_where_its_words_are_consecutive() -> None:
    out = snip('"NATO troops"', text="NATO says troops left; NATO troops stayed.")
    assert out == "NATO says troops left; [NATO] [troops] stayed."


def test_negated_terms_are_not_marked() -> None:
    out = snip("troops -exercise", text="Troops joined the exercise.")
    assert out == "[Troops] joined the exercise."


def test_field_filtered_terms_are_marked_only_in_their_field() -> None:
    fields = {"title": "Paris summit", "text": "Leaders met in Paris."}
    assert snippet(parse_query("title:paris"), fields) == "[Paris] summit"
    assert snippet(parse_query("text:paris summit"), fields) == "Leaders met in [Paris]."


def test_field_with_most_matched_terms_wins_and_ties_prefer_the_text() -> None:
    fields = {"title": "NATO troops in Ukraine", "text": "NATO met today.", "author": "NATO"}
    assert snippet(parse_query("nato troops"), fields) == "[NATO] [troops] in Ukraine"
    assert snippet(parse_query("nato"), fields) == "[NATO] met today."


def test_transcript_is_a_field_like_the_others() -> None:
    fields = {"title": "Live", "text": None, "transcript": "and the NATO troops will stay"}
    assert snippet(parse_query("troops"), fields) == "and the NATO [troops] will stay"


def test_no_matched_term_gives_the_beginning_of_the_text() -> None:
    assert snip("absent", width=3, title="Title", text="One two three four.") == (
        "One two three ..."
    )


def test_no_content_gives_an_empty_snippet() -> None:
    assert snippet(parse_query("nato"), {"title": None, "text": ""}) == ""


def test_accents_and_case_are_matched_but_the_original_spelling_is_kept() -> None:
    assert snip("elysee", text="Reçu à l'Élysée hier.") == "Reçu à l'[Élysée] hier."
    assert snip("нато", text="Генсек НАТО заявил.") == "Генсек [НАТО] заявил."
    assert snip("ISTANBUL isparta", text="İstanbul ve Isparta'da") == "[İstanbul] ve [Isparta]'da"
    assert snip("πρωθυπουργος", text="Ο Πρωθυπουργός μίλησε") == "Ο [Πρωθυπουργός] μίλησε"
    assert snip("strasse", text="Die Straße ist zu.") == "Die [Straße] ist zu."


def test_words_with_punctuation_are_marked_token_by_token() -> None:
    assert snip("NATO-led", text="The NATO-led force.") == "The [NATO]-[led] force."
    assert snip("led", text="The NATO-led force.") == "The NATO-[led] force."


def test_scripts_with_vowel_signs_are_marked_as_whole_words() -> None:
    # FTS5 splits Devanagari at vowel signs; the mark must still wrap the word a reader sees.
    assert snip("भारत", text="यह भारत है") == "यह [भारत] है"


def test_snippet_of_a_long_transcript_is_fast() -> None:
    long = " ".join(f"word{i % 997} filler text" for i in range(20_000)) + " NATO troops"
    query = parse_query("nato troops word5* filler")
    started = time.perf_counter()
    out = snippet(query, {"transcript": long})
    assert time.perf_counter() - started < 2.0
    assert "[NATO] [troops]" in out


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["nato", "troop*", '"a b"', "é OR ı", "title:x y", "NEAR(a b)", "x -y"]),
    st.text(max_size=200),
    st.integers(min_value=1, max_value=12),
)
@example("nato", "0:\u07a6", 1)  # a lone combining mark: no token, so not a word to count
def test_snippet_never_fails_and_respects_width(query: str, text: str, width: int) -> None:
    out = snippet(parse_query(query), {"title": text[:20], "text": text}, width)
    # Words as the index sees them: a run of marks with no letter in it holds no token.
    words = [w for w in _word_re().findall(out) if split_tokens(fold(w))]
    assert len(words) <= width


_WORDS = ["NATO", "nato", "Troops", "troupes", "Élysée", "elysee", "İstanbul", "ıstanbul", "a", "b",
          "x", "y", "Straße", "strasse", "НАТО", "войска", "-", ".", " "]  # fmt: skip


@given(
    st.sampled_from(["nato troop*", '"a b"', "elysee OR istanbul", "title:x y", "strasse", "нато"]),
    *[st.lists(st.sampled_from(_WORDS), max_size=30).map(" ".join) for _ in range(3)],
)
def test_skipping_fields_without_a_possible_hit_changes_no_snippet(
    query: str, title: str, text: str, author: str
) -> None:
    fields = {"title": title, "text": text, "author": author}
    with mock.patch("monitor.snippet._may_hold", return_value=True):
        every_field_read = snippet(parse_query(query), fields)
    assert snippet(parse_query(query), fields) == every_field_read


# --- transcript_offset ------------------------------------------------------------------------


def test_offset_is_where_the_whole_query_is_said_not_the_first_lone_term() -> None:
    segments = [(0.0, "good evening"), (4.2, "NATO met today"), (9.0, "later on"),
                (12.0, "ministers"), (15.5, "said NATO troops"), (18.0, "may go to Ukraine")]  # fmt: skip
    assert transcript_offset(parse_query("NATO troops Ukraine"), segments) == 15.5


def test_offset_of_a_phrase_straddling_segments_is_where_its_first_word_is() -> None:
    segments = [(0.0, "we now go to"), (2.0, "the NATO"), (3.5, "troops near Kharkiv")]
    assert transcript_offset(parse_query('"NATO troops"'), segments) == 2.0


def test_offset_of_an_or_query_is_the_first_alternative_said() -> None:
    segments = [(0.0, "hello"), (3.0, "the forces"), (20.0, "troops and forces")]
    assert transcript_offset(parse_query("troops OR forces"), segments) == 3.0


def test_offset_falls_back_to_where_most_terms_are_said_together() -> None:
    segments = [(0.0, "NATO"), (1.0, "x"), (2.0, "x"), (3.0, "x"), (4.0, "Ukraine troops")]
    assert transcript_offset(parse_query("NATO troops Ukraine"), segments) == 4.0


def test_offset_needs_terms_in_the_transcript() -> None:
    segments = [(0.0, "nothing relevant"), (2.0, "here")]
    assert transcript_offset(parse_query("nato"), segments) is None
    assert transcript_offset(parse_query("nato"), []) is None
    assert transcript_offset(parse_query("title:here"), segments) is None


def test_offset_ignores_terms_meant_for_other_fields() -> None:
    segments = [(0.0, "Macron spoke"), (5.0, "about Ukraine")]
    assert transcript_offset(parse_query("title:Macron Ukraine"), segments) == 5.0
    assert transcript_offset(parse_query("transcript:Macron"), segments) == 0.0


def test_offset_uses_folded_matching_for_every_script() -> None:
    segments = [(0.0, "Добрый вечер"), (3.0, "Генсек"), (6.0, "НАТО заявил"), (9.0, "о войсках")]
    assert transcript_offset(parse_query("нато войсках"), segments) == 6.0
    assert transcript_offset(parse_query("ГЕНСЕК"), segments) == 3.0


def test_offset_of_a_prefix_and_a_near_group() -> None:
    segments = [(0.0, "talks"), (7.0, "deployment of"), (9.0, "air defence")]
    assert transcript_offset(parse_query("deploy*"), segments) == 7.0
    assert transcript_offset(parse_query("NEAR(deployment defence)"), segments) == 7.0


def test_the_stored_table_of_combining_marks_is_this_pythons_unicode():
    from monitor import _marks
    from monitor.snippet import mark_ranges

    if unicodedata.unidata_version != _marks.UNIDATA_VERSION:
        pytest.skip(f"table is for Unicode {_marks.UNIDATA_VERSION}")
    stored = [tuple(int(x, 16) for x in r.split("-")) for r in _marks.MARKS.split()]
    assert stored == mark_ranges()


def test_a_pass_reads_each_text_once_whatever_alerts_match_it(monkeypatch) -> None:
    import monitor.snippet as snippet_module

    made: list[str] = []
    real = snippet_module._Doc.__init__

    def counting(self: object, text: str) -> None:
        made.append(text)
        real(self, text)  # type: ignore[arg-type]

    queries = [parse_query(q) for q in (
        "nato troops ukraine", "NATO -Gaza", "ukrain* OR kremlin", '"energy grid"', "title:summit",
        "moscow NEAR/5 ukraine", "Paris", "nato troops ukraine -football",
    )]  # fmt: skip
    posts = [
        {"title": "Summit in Paris", "text": TEXT, "author": "Desk"},
        {
            "title": "Kremlin: [UPDATE] NATO",
            "text": TEXT.replace("NATO", "Alliance"),
            "author": "Desk",
        },
    ]
    expected = [[snippet(q, p) for q in queries] for p in posts]
    made.clear()
    monkeypatch.setattr(snippet_module._Doc, "__init__", counting)
    snippets = snippet_module.Snippets(queries)
    assert [[snippets.snippet(q, p) for q in queries] for p in posts] == expected
    # Each distinct text once: two titles, two bodies, one author's name.
    assert sorted(made) == sorted({v for p in posts for v in p.values()})


def test_the_quick_test_for_marks_lets_every_mark_joiner_and_private_use_through() -> None:
    # `_word_rx` takes the plain pattern when the quick search finds nothing: every character
    # the exact test would flag must be found, or a word with a mark would be split in two.
    from monitor.snippet import _may_need_word_re, _word_re, _word_rx, mark_ranges

    quick = _may_need_word_re()
    flagged = [*mark_ranges(), (0x200C, 0x200D), (0xE000, 0xF8FF)]
    for a, b in flagged:
        for cp in {a, (a + b) // 2, b}:
            assert quick.search(f"ab{chr(cp)}c") is not None, hex(cp)
            assert _word_rx(f"ab{chr(cp)}c") is _word_re()
    # Astral text goes to the exact test; most of it (emoji) is plain there.
    assert _word_rx("война 🙂 НАТО").pattern == r"[^\W_]+"
    assert _word_rx("война — НАТО «союз»").pattern == r"[^\W_]+"
    assert _word_rx("नमस्ते दुनिया") is _word_re()


@settings(max_examples=2000, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("aZé_ 9.,-—«»\n\u0301\u200dНАТОйक्षि日本🙂'")), max_size=60
    ),
    st.integers(0, 30),
    st.integers(0, 30),
)
def test_word_spans_are_the_word_patterns_matches(text, start, width):
    from monitor.snippet import _Doc

    doc = _Doc(text)
    every = [m.span() for m in doc._rx.finditer(text)]
    if doc._keep is not None:
        every = [every[i] for i in doc._keep]
    assert doc.spans(start, start + width) == every[start : start + width]
