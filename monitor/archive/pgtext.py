"""Pure: the query language on PostgreSQL — folded tokens as a tsvector, queries as tsquery, NEAR checked exactly.

PostgreSQL's parser and dictionaries never see the text: the monitor folds it and splits it into
tokens as FTS5's unicode61 does (monitor.query.split_tokens), and writes the tsvector and the
tsquery as literals, so both backends find the same posts for the same query.

A column is a weight (title A, text B, transcript C, author D); a field filter restricts each of
its lexemes to that weight. Each tsvector also holds its post's rev bucket (`_r12` for revs
120,000..129,999), so that a search can ask the GIN index for the newest matches first. A
tsvector holds at most 16,383 positions and 256 per lexeme, so a longer post keeps one position
per lexeme and column and is marked `_long`: its phrases, like every NEAR, are then candidates
that `matches` checks on the text itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from monitor.query import FIELDS, And, Field, Near, Node, Not, Or, Phrase, Query, split_tokens
from monitor.text import fold

WEIGHTS = dict(zip(FIELDS, "ABCD", strict=True))
MAX_POS = 16383  # tsvector positions run 1..16383
MAX_POSITIONS = 256  # per lexeme
MAX_LEXEME = 2046  # bytes: PostgreSQL refuses longer words
# A tsvector is at most 1 MB: past this, the words a post brings last are left out.
MAX_BYTES = 900_000
LONG = "_long"  # a lexeme no text yields: split_tokens never keeps "_"
BUCKET = 10_000  # posts (revs) per rev bucket
# NEAR up to this distance is written as phrase operators (`<k>`, one per distance, column and
# order); past it, as its phrases anywhere, each candidate checked on its text.
NEAR_WRITTEN = 32


def bucket(number: int) -> str:
    """The lexeme of rev bucket `number` (of revs number * BUCKET .. number * BUCKET + 9,999)."""
    return f"_r{number}"


# ts_rank's weights, in its order {D, C, B, A}, as SQLite's bm25 weighs title 4, text and
# transcript 1, author 0.5.
RANK_WEIGHTS = "{0.125, 0.25, 0.25, 1}"  # at most 1 each: bm25's, divided by 4


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def field_tokens(fields: Sequence[str | None]) -> list[list[str]]:
    """The tokens of (title, text, transcript, author), folded as the search folds them."""
    return [split_tokens(fold(value)) if value else [] for value in fields]


def tsvector(fields: Sequence[str | None], rev: int) -> str:
    """The tsvector literal of a post's (title, text, transcript, author), at its rev."""
    found: dict[str, list[tuple[int, str]]] = {}
    pos = 1
    for weight, tokens in zip("ABCD", field_tokens(fields), strict=True):
        for token in tokens:
            found.setdefault(token, []).append((pos, weight))
            pos += 1
        pos += 1  # a gap: no phrase runs from one column into the next
    long = pos > MAX_POS or any(len(p) > MAX_POSITIONS for p in found.values())
    parts = []
    size = 0
    for token, places in found.items():
        length = len(token.encode())
        if length > MAX_LEXEME:
            continue  # a "word" of 2 KB is a blob, not language: it is not searchable here
        size += length + 8  # the word, its entry and a few positions
        if size > MAX_BYTES:
            break  # megabytes of text: the words first seen are kept (the search finds those)
        if long:
            # One place per column, at a position of its own (one position keeps one weight).
            weights = sorted({w for _, w in places})
            entries = ",".join(f"{'ABCD'.index(w) + 1}{w}" for w in weights)
        else:
            entries = ",".join(f"{p}{w}" for p, w in places)
        parts.append(f"{_lexeme(token)}:{entries}")
    if long:
        parts.append(f"{_lexeme(LONG)}:1")
    parts.append(_lexeme(bucket(rev // BUCKET)))  # no position: no phrase can reach it
    return " ".join(parts)


class TsQuery(NamedTuple):
    text: str  # a tsquery every matching post satisfies (and maybe a few others)
    exact: bool  # True when it matches exactly the posts the query does: no check needed
    # A tsquery only matching posts satisfy (None: none can be written, as for NEAR of three
    # phrases): a post that satisfies `text` and not `sure` is the only kind that needs
    # `matches`.
    sure: str | None
    # `text` without phrase operators (every post that satisfies `text` satisfies it), for
    # the GIN index: it looks up each lexeme of a tsquery as often as it is written, and a
    # NEAR written as phrase operators writes each many times. Equal to `text` when that has
    # none; else `text` is checked on the rows the index gives.
    index: str
    # What ts_rank ranks on: `text` with each NEAR as its phrases (ts_rank counts a lexeme as
    # often as the tsquery writes it).
    rank: str


def tsquery(query: Query) -> TsQuery:
    loose = _loose(query.ast, "")
    strict = _strict(query.ast, "")
    index = _index(query.ast, "")
    return TsQuery(loose, loose == strict, strict, index, _loose(query.ast, "", near=False))


def _term(token: str, prefix: bool, weight: str) -> str:
    return _lexeme(token) + (":" + ("*" if prefix else "") + weight if prefix or weight else "")


def _phrase(p: Phrase, weight: str) -> str:
    last = len(p.tokens) - 1
    return " <-> ".join(_term(t, p.prefix and i == last, weight) for i, t in enumerate(p.tokens))


def _all_tokens(p: Phrase, weight: str) -> str:
    last = len(p.tokens) - 1
    return " & ".join(_term(t, p.prefix and i == last, weight) for i, t in enumerate(p.tokens))


def _within(p: Phrase, q: Phrase, distance: int, weight: str) -> str:
    """A tsquery for NEAR(p q, distance) on the positions (the caller settles the columns).

    FTS5 matches when one phrase starts 0 to len(first) + distance tokens after the other
    starts; `a <k> b` is b starting k tokens after a's last token, so k = 0..distance + 1
    writes the offsets from len(first) - 1 up (`_writable` says when the others can't occur)."""
    a, b = _phrase(p, weight), _phrase(q, weight)
    # k = 0 puts the second phrase's first token on the first's last: only when one token of
    # the text can match both (each k is evaluated on every candidate: none is written idly).
    ab = range(0 if _both(_prefixed(p)[-1], _prefixed(q)[0]) else 1, distance + 2)
    ba = range(0 if _both(_prefixed(q)[-1], _prefixed(p)[0]) else 1, distance + 2)
    return " | ".join([f"({a}) <{k}> ({b})" for k in ab] + [f"({b}) <{k}> ({a})" for k in ba])


def _writable(p: Phrase, q: Phrase) -> bool:
    """Whether `_within` is exact for p and q: the offsets it can't write (one phrase starting
    inside the other, before its last token) need a token of the text to match both phrases'
    tokens at once there, and no such token can."""
    for first, second in ((p, q), (q, p)):
        for offset in range(len(first.tokens) - 1):
            if offset == 0 and len(second.tokens) == 1:
                continue  # the same start: second <0> first writes it
            overlap = zip(_prefixed(first)[offset:], _prefixed(second), strict=False)
            if all(_both(x, y) for x, y in overlap):
                return False
    return True


def _prefixed(p: Phrase) -> list[tuple[str, bool]]:
    last = len(p.tokens) - 1
    return [(t, p.prefix and i == last) for i, t in enumerate(p.tokens)]


def _both(x: tuple[str, bool], y: tuple[str, bool]) -> bool:
    """Whether one token of a text can match both query tokens (a word, or a prefix)."""
    (a, a_prefix), (b, b_prefix) = x, y
    return a == b or (a_prefix and b.startswith(a)) or (b_prefix and a.startswith(b))


def _loose(node: Node, weight: str, near: bool = True) -> str:
    """A tsquery matched by every post the node matches (each NEAR as its phrases anywhere,
    without `near`)."""
    match node:
        case Phrase(tokens, _) if len(tokens) == 1:
            return _phrase(node, weight)
        case Phrase():
            return f"({_phrase(node, weight)}) | ({_all_tokens(node, weight)} & '{LONG}')"
        case And(items):
            return " & ".join(f"({_loose(i, weight, near)})" for i in items)
        case Or(items):
            return " | ".join(f"({_loose(i, weight, near)})" for i in items)
        case Not(base, excluded):
            inner = _strict(excluded, weight)
            base_text = _loose(base, weight, near)
            return base_text if inner is None else f"({base_text}) & !({inner})"
        case Near(phrases, distance):
            each = " & ".join(f"({_loose(p, weight, near)})" for p in phrases)
            if distance > NEAR_WRITTEN or not near:
                return each
            # Each two of the phrases within the distance, written where it can be (in any
            # column: a superset), or both present; or all of them anywhere in a long post.
            pairs = [
                _within(p, q, distance, weight) if _writable(p, q) else None
                for i, p in enumerate(phrases)
                for q in phrases[i + 1 :]
            ]
            if all(pair is None for pair in pairs):
                return each
            within = " & ".join(f"({pair})" for pair in pairs if pair is not None)
            everywhere = " & ".join(f"({_all_tokens(p, weight)})" for p in phrases)
            return f"(({each}) & ({within})) | ({everywhere} & '{LONG}')"
        case Field(name, child):
            return _loose(child, WEIGHTS[name], near)
    raise TypeError(node)


def _strict(node: Node, weight: str) -> str | None:
    """A tsquery matched only by posts the node matches (None: no such tsquery, i.e. false)."""
    match node:
        case Phrase(tokens, _) if len(tokens) == 1:
            return _phrase(node, weight)
        case Phrase():
            return f"({_phrase(node, weight)}) & !'{LONG}'"
        case And(items):
            parts = [_strict(i, weight) for i in items]
            if any(p is None for p in parts):
                return None
            return " & ".join(f"({p})" for p in parts)
        case Or(items):
            parts = [p for p in (_strict(i, weight) for i in items) if p is not None]
            return " | ".join(f"({p})" for p in parts) if parts else None
        case Not(base, excluded):
            base_text = _strict(base, weight)
            if base_text is None:
                return None
            return f"({base_text}) & !({_loose(excluded, weight)})"
        case Near(phrases, distance):
            if len(phrases) != 2 or distance > NEAR_WRITTEN or not _writable(*phrases):
                return None
            # Two phrases within the distance in one column, a weight each (positions run on
            # across the columns, so only the weight keeps a pair from straddling two).
            # The text first: most posts that match, match there, and `|` stops at the first.
            columns = " | ".join(f"({_within(*phrases, distance, w)})" for w in weight or "BACD")
            return f"({columns}) & !'{LONG}'"
        case Field(name, child):
            return _strict(child, WEIGHTS[name])
    raise TypeError(node)


def _index(node: Node, weight: str) -> str:
    """A tsquery without phrase operators matched by every post `_loose` matches."""
    match node:
        case Phrase():
            return _all_tokens(node, weight)
        case And(items):
            return " & ".join(f"({_index(i, weight)})" for i in items)
        case Or(items):
            return " | ".join(f"({_index(i, weight)})" for i in items)
        case Not(base, excluded):
            base_text = _index(base, weight)
            if _positional(excluded):
                return base_text  # no phrase-free tsquery is matched only by what it excludes
            inner = _strict(excluded, weight)
            return base_text if inner is None else f"({base_text}) & !({inner})"
        case Near(phrases, _):
            return " & ".join(f"({_all_tokens(p, weight)})" for p in phrases)
        case Field(name, child):
            return _index(child, WEIGHTS[name])
    raise TypeError(node)


def _positional(node: Node) -> bool:
    """Whether the node's tsqueries hold phrase operators (a phrase of words, or NEAR)."""
    match node:
        case Phrase(tokens, _):
            return len(tokens) > 1
        case And(items) | Or(items):
            return any(_positional(i) for i in items)
        case Not(base, excluded):
            return _positional(base) or _positional(excluded)
        case Near():
            return True
        case Field(_, child):
            return _positional(child)
    raise TypeError(node)


# --- the exact check, as FTS5 evaluates the query ------------------------------------------------


def matches(query: Query, fields: Sequence[str | None]) -> bool:
    """Whether a post's (title, text, transcript, author) matches the query, as on FTS5."""
    return _eval(query.ast, field_tokens(fields), (0, 1, 2, 3))


def _starts(p: Phrase, tokens: list[str]) -> list[int]:
    """Where the phrase starts in one column's tokens."""
    n = len(p.tokens)
    last = n - 1
    out = []
    for i in range(len(tokens) - n + 1):
        for j, want in enumerate(p.tokens):
            have = tokens[i + j]
            if not (have.startswith(want) if p.prefix and j == last else have == want):
                break
        else:
            out.append(i)
    return out


def _near(near: Near, tokens: list[str]) -> bool:
    # FTS5 (fts5ExprNearIsMatch): one instance of each phrase such that, with m the last of
    # their starts, each phrase i starts at or after m - len(i) - distance.
    starts = [_starts(p, tokens) for p in near.phrases]
    if not all(starts):
        return False
    for m in sorted({s for each in starts for s in each}):
        if all(
            any(m - len(p.tokens) - near.distance <= s <= m for s in each)
            for p, each in zip(near.phrases, starts, strict=True)
        ):
            return True
    return False


def _eval(node: Node, doc: list[list[str]], cols: tuple[int, ...]) -> bool:
    match node:
        case Phrase():
            return any(_starts(node, doc[c]) for c in cols)
        case And(items):
            return all(_eval(i, doc, cols) for i in items)
        case Or(items):
            return any(_eval(i, doc, cols) for i in items)
        case Not(base, excluded):
            return _eval(base, doc, cols) and not _eval(excluded, doc, cols)
        case Near():
            return any(_near(node, doc[c]) for c in cols)
        case Field(name, child):
            return _eval(child, doc, (FIELDS.index(name),))
    raise TypeError(node)
