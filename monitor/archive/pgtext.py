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
    # A tsquery only matching posts satisfy (None: none can be written, as for NEAR): a post
    # that satisfies `text` and not `sure` is the only kind that needs `matches`.
    sure: str | None


def tsquery(query: Query) -> TsQuery:
    loose = _loose(query.ast, "")
    strict = _strict(query.ast, "")
    return TsQuery(loose, loose == strict, strict)


def _term(token: str, prefix: bool, weight: str) -> str:
    return _lexeme(token) + (":" + ("*" if prefix else "") + weight if prefix or weight else "")


def _phrase(p: Phrase, weight: str) -> str:
    last = len(p.tokens) - 1
    return " <-> ".join(_term(t, p.prefix and i == last, weight) for i, t in enumerate(p.tokens))


def _all_tokens(p: Phrase, weight: str) -> str:
    last = len(p.tokens) - 1
    return " & ".join(_term(t, p.prefix and i == last, weight) for i, t in enumerate(p.tokens))


def _loose(node: Node, weight: str) -> str:
    """A tsquery matched by every post the node matches."""
    match node:
        case Phrase(tokens, _) if len(tokens) == 1:
            return _phrase(node, weight)
        case Phrase():
            return f"({_phrase(node, weight)}) | ({_all_tokens(node, weight)} & '{LONG}')"
        case And(items):
            return " & ".join(f"({_loose(i, weight)})" for i in items)
        case Or(items):
            return " | ".join(f"({_loose(i, weight)})" for i in items)
        case Not(base, excluded):
            inner = _strict(excluded, weight)
            base_text = _loose(base, weight)
            return base_text if inner is None else f"({base_text}) & !({inner})"
        case Near(phrases, _):
            return " & ".join(f"({_loose(p, weight)})" for p in phrases)
        case Field(name, child):
            return _loose(child, WEIGHTS[name])
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
        case Near():
            return None
        case Field(name, child):
            return _strict(child, WEIGHTS[name])
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
