"""The query language: parsing, errors with positions, and FTS5 expressions run on real SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.query import (
    MAX_DEPTH,
    And,
    Field,
    Near,
    Not,
    Or,
    Phrase,
    Query,
    QueryError,
    Term,
    parse_query,
)
from monitor.text import fold

COLUMNS = ("title", "text", "transcript", "author")
DOCS: dict[int, dict[str, str]] = {
    1: {
        "title": "NATO troops to Ukraine?",
        "text": "Deploying NATO troops to Ukraine would provoke a response, the Kremlin said.",
        "author": "Kremlin press office",
    },
    2: {
        "title": "Macron reçoit à l'Élysée",
        "text": "Le président a passé en revue les troupes françaises.",
        "author": "Élysée",
    },
    3: {"title": "НАТО проводит учения", "text": "Генсек НАТО заявил о войсках у границы."},
    4: {"title": "İstanbul'da zirve", "text": "Türkiye ve ısparta hakkında açıklama."},
    5: {"title": "Η Ελλάδα στο ΝΑΤΟ", "text": "Ο πρωθυπουργός μίλησε για την άμυνα."},
    6: {
        "title": "Steadfast exercise",
        "text": "A NATO exercise with forces in Poland.",
        "transcript": "forces deployed in the north at 10:30 today",
    },
    7: {"text": "The U.S.-led mission joined NATO-led forces; see https://nato.int/news."},
    8: {"text": "Troops were deployed. Much later, far away, after a long day, Ukraine answered."},
}


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(":memory:")
    con.execute(
        "CREATE VIRTUAL TABLE posts_fts USING fts5(title, text, transcript, author, "
        "tokenize = 'unicode61 remove_diacritics 2')"
    )
    for rowid, doc in DOCS.items():
        values = [fold(doc.get(c)) for c in COLUMNS]
        con.execute("INSERT INTO posts_fts(rowid, title, text, transcript, author) VALUES (?,?,?,?,?)",
                    (rowid, *values))  # fmt: skip
    yield con
    con.close()


def rows(db: sqlite3.Connection, query: str) -> set[int]:
    expr = parse_query(query).fts()
    return {
        r[0] for r in db.execute("SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?", (expr,))
    }


# --- the AST and the FTS5 text ----------------------------------------------------------------


def w(*tokens: str, prefix: bool = False) -> Phrase:
    return Phrase(tokens, prefix)


def test_words_are_anded_and_folded() -> None:
    q = parse_query("NATO Troops Ukraine")
    assert q.ast == And((w("nato"), w("troops"), w("ukraine")))
    assert q.fts() == '"nato" AND "troops" AND "ukraine"'
    assert q.source == "NATO Troops Ukraine"


def test_negation_is_fts5_binary_not_of_the_positive_part() -> None:
    assert parse_query("a b -c").fts() == '("a" AND "b") NOT "c"'
    assert parse_query("a NOT c").fts() == '"a" NOT "c"'
    assert parse_query("NOT c a").fts() == '"a" NOT "c"'
    assert parse_query("a -b NOT c").fts() == '"a" NOT ("b" OR "c")'
    assert parse_query("a AND NOT b").ast == Not(w("a"), w("b"))


def test_or_is_an_uppercase_keyword_and_binds_looser_than_and() -> None:
    assert parse_query("a b OR c").ast == Or((And((w("a"), w("b"))), w("c")))
    assert parse_query("a (b OR c)").fts() == '"a" AND ("b" OR "c")'
    assert parse_query("war or peace").ast == And((w("war"), w("or"), w("peace")))
    assert parse_query("a OR b OR c").ast == Or((w("a"), w("b"), w("c")))


def test_phrases_and_prefixes() -> None:
    assert parse_query('"NATO troops"').fts() == '"nato troops"'
    assert parse_query("deploy*").ast == w("deploy", prefix=True)
    assert parse_query('"NATO tro"*').fts() == '"nato tro"*'
    assert parse_query("“NATO troops”").ast == w("nato", "troops")  # typographic quotes


def test_near_takes_words_phrases_and_prefixes_with_default_distance() -> None:
    assert parse_query("NEAR(NATO troops Ukraine)").ast == Near(
        (w("nato"), w("troops"), w("ukraine")), 10
    )
    assert parse_query('NEAR("NATO troops" deploy*, 3)').fts() == (
        'NEAR("nato troops" "deploy"*, 3)'
    )
    assert parse_query("near the border").ast == And((w("near"), w("the"), w("border")))


def test_field_filters_apply_to_words_phrases_prefixes_and_groups() -> None:
    assert parse_query("title:Macron").fts() == '{title} : ("macron")'
    assert parse_query('Author:"Kremlin press"').ast == Field("author", w("kremlin", "press"))
    assert parse_query("text:deploy*").ast == Field("text", w("deploy", prefix=True))
    assert parse_query("title:(a OR b) -transcript:c").fts() == (
        '{title} : ("a" OR "b") NOT {transcript} : ("c")'
    )
    assert parse_query("title: (a title:b)").ast == Field("title", And((w("a"), w("b"))))


def test_words_with_punctuation_become_phrases_of_unicode61_tokens() -> None:
    assert parse_query("NATO-led").ast == w("nato", "led")
    assert parse_query("l'Élysée").ast == w("l", "elysee")
    assert parse_query("U.S.").ast == w("u", "s")
    assert parse_query("snake_case").ast == w("snake", "case")


def test_urls_and_times_are_words_not_field_filters() -> None:
    assert parse_query("https://nato.int/news").ast == w("https", "nato", "int", "news")
    assert parse_query("10:30").ast == w("10", "30")


def test_punctuation_alone_is_ignored_like_the_tokenizer_ignores_it() -> None:
    assert parse_query("NATO & Ukraine").ast == And((w("nato"), w("ukraine")))
    assert parse_query("NATO - Ukraine").ast == And((w("nato"), w("ukraine")))
    assert parse_query("troops *").ast == w("troops")


def test_terms_lists_positive_terms_with_field_and_prefix_once_each() -> None:
    q = parse_query('NATO title:deploy* -exercise "U.S. troops" NATO NOT (a OR b)')
    assert q.terms() == [
        Term(("nato",)),
        Term(("deploy",), is_prefix=True, field="title"),
        Term(("u", "s", "troops")),
    ]
    assert parse_query("NEAR(a b) OR c").terms() == [Term(("a",)), Term(("b",)), Term(("c",))]


def test_quotes_inside_terms_are_doubled_in_fts() -> None:
    assert Query('x"y', Phrase(('x"y',))).fts() == '"x""y"'


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        ("  & ...", 2, "no searchable words"),
        ("NATO OR", 5, "OR needs a term on each side"),
        ("OR NATO", 0, "OR needs a term on each side"),
        ("a OR OR b", 5, "OR needs a term on each side"),
        ("a AND", 2, "AND needs a term on each side"),
        ('NATO "troops', 5, "unclosed quote"),
        ('a ""', 2, "empty phrase"),
        ("a ()", 2, "empty parentheses"),
        ("(a OR b) (c", 9, "unbalanced parenthesis"),
        ("a OR b) c", 6, "unbalanced parenthesis"),
        ("NOT exercise", 0, "nothing to exclude from"),
        ("-a -b", 0, "nothing to exclude from"),
        ("a OR -b", 5, "nothing to exclude from"),
        ("a NOT", 5, "after NOT"),
        ("a NOT NOT b", 6, "after NOT"),
        ("a title:", 8, "after 'title:'"),
        ("a title:OR b", 8, "after 'title:'"),
        ("title:text:a", 6, "'text:' inside 'title:' can never match"),
        ("NEAR(a)", 0, "at least two terms"),
        ("x NEAR(a b", 2, "NEAR( is not closed"),
        ("NEAR(a b, ten)", 10, "whole number"),
        ("NEAR(a b, 10 c)", 13, "expected ')'"),
        ("NEAR(a b, 1000000)", 10, "at most"),
        ("NEAR(a OR b)", 7, "only words and phrases"),
        ("NEAR(a (b))", 7, "only words and phrases"),
        ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MAX_DEPTH, "too deeply nested"),
    ],
)
def test_errors_say_what_and_where(query: str, position: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.position == position
    assert message in str(info.value)
    assert str(info.value).endswith(f"at column {position + 1}")


def test_unknown_field_names_it_and_the_allowed_ones() -> None:
    with pytest.raises(QueryError) as info:
        parse_query("NATO foo:bar")
    assert info.value.position == 5
    assert "'foo:'" in str(info.value)
    for field in COLUMNS:
        assert field in str(info.value)


def test_query_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_query("(")


# --- against real SQLite FTS5 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("NATO troops Ukraine", {1}),
        ("nato", {1, 6, 7}),
        ('"NATO troops"', {1}),
        ('"troops NATO"', set()),
        ("deploy*", {1, 6, 8}),
        ("troops OR forces", {1, 6, 7, 8}),
        ("NATO -exercise", {1, 7}),
        ("NATO NOT (exercise OR mission)", {1}),
        ("forces NOT title:exercise", {7}),
        ("NEAR(troops Ukraine, 2)", {1}),
        ("NEAR(troops Ukraine)", {1, 8}),
        ("NEAR(troops Ukraine, 5)", {1}),
        ('NEAR("NATO troops" ukr*, 1)', {1}),
        ("title:Ukraine", {1}),
        ("author:kremlin", {1}),
        ("transcript:forces", {6}),
        ("title:(troops OR exercise)", {1, 6}),
        ("elysee", {2}),
        ("ÉLYSÉE", {2}),
        ("l'Elysee", {2}),
        ("recoit", {2}),
        ("troupes francaises", {2}),
        ("нато", {3}),
        ("НАТО учения", {3}),
        ("ISTANBUL", {4}),
        ("istanbul", {4}),
        ("Isparta", {4}),
        ("turkiye", {4}),
        ("ΠΡΩΘΥΠΟΥΡΓΟΣ", {5}),
        ("ελλαδα", {5}),
        ("U.S.-led", {7}),
        ("NATO-led", {7}),
        ("https://nato.int/news", {7}),
        ("10:30", {6}),
        ("war or peace", set()),
    ],
)
def test_fts_expression_returns_exactly_the_matching_rows(
    db: sqlite3.Connection, query: str, expected: set[int]
) -> None:
    assert rows(db, query) == expected


def test_fts_syntax_typed_by_a_user_is_searched_as_words(db: sqlite3.Connection) -> None:
    assert rows(db, 'NATO" OR "Élysée') == set()  # "or" is a word here, not an operator
    assert rows(db, "{title}:NATO ^NATO NATO+") == set()
    assert rows(db, "NATO^") == {1, 6, 7}


def test_deepest_allowed_nesting_is_accepted_by_sqlite(db: sqlite3.Connection) -> None:
    shapes = ["x -y ({})", "a OR b ({} -c)", "title:(x -y {} -z) OR w", "a OR (b ({}) -c)"]
    for shape in shapes:
        query = "NEAR(a b)"
        while True:
            deeper = shape.format(query)
            try:
                parse_query(deeper)
            except QueryError:
                break
            query = deeper
        assert query.count("(") > MAX_DEPTH // 2  # a field filter costs a level of its own
        rows(db, query)  # raises sqlite3.OperationalError if FTS5 refuses it


def test_very_long_queries_are_accepted(db: sqlite3.Connection) -> None:
    assert rows(db, " ".join(["nato"] * 3000)) == {1, 6, 7}
    assert rows(db, " OR ".join(f"w{i}" for i in range(3000)) + " OR nato") == {1, 6, 7}


SYNTAX = st.sampled_from(
    ['"', "“", "”", "(", ")", "-", "*", ":", ",", " ", " ", "OR", "AND", "NOT", "NEAR", "NEAR(",
     "title:", "text:", "author:", "foo:", "a", "b", "É", "ı", "_", "'", "10", "//", "{", "}", "^",
     "+", "\x00", "\u0301", "ᦰ", "😀"]
)  # fmt: skip


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.text(max_size=60), st.lists(SYNTAX, max_size=30).map("".join)))
def test_any_input_parses_to_sql_that_sqlite_accepts_or_raises_query_error(
    db: sqlite3.Connection, source: str
) -> None:
    try:
        query = parse_query(source)
    except QueryError as e:
        assert 0 <= e.position <= len(source)
        return
    db.execute("SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?", (query.fts(),)).fetchall()
    for term in query.terms():
        assert term.tokens and all(term.tokens)
