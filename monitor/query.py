"""Pure: the query language of alerts and search, parsed to an AST and rendered as safe FTS5."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from monitor.text import fold

# The grammar, loosest first:
#   query   := and ("OR" and)*                  OR binds looser than AND, as in FTS5 and SQL
#   and     := item (["AND"] item)*             items: terms, and NOT x / -x to exclude
#   primary := word | word* | "phrase" | "phrase"* | (query) | NEAR(terms[, n]) | field:primary
# Judgement calls, each meant to avoid a silent non-match:
# - OR, AND, NOT and NEAR( are keywords only in upper case; "or" is a word.
# - A word is split into tokens as unicode61 splits it and searched as a phrase (NATO-led,
#   l'Élysée, U.S.); a word with no token at all ("&", "-", "...") is ignored like the index does.
# - "name:" starts a field filter only if name is letters; "10:30" is a word, and so is a URL
#   ("https://..."); any other "name:" is an error that names the allowed fields.
# - "-" negates only when glued to what follows ("-exercise"); "NATO - Ukraine" is punctuation.
# - A NOT needs a positive term in the same AND group: FTS5's NOT is binary.

FIELDS = ("title", "text", "transcript", "author")
DEFAULT_NEAR = 10
MAX_NEAR = 100_000
# FTS5's expression parser has a fixed stack (about 100 entries); a few levels of our nesting
# cost it several entries each, so deeper queries would fail inside SQLite instead of here.
MAX_DEPTH = 8

# What FTS5's unicode61 tokenizer keeps inside a token: letters, numbers, private use (L* N* Co).
# `[^\W_]` is exactly L* and N* in Python; combining marks and `_` separate tokens, as in SQLite.
_TOKEN = re.compile(r"(?:[^\W_]|[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd])+")
_FIELD_PREFIX = re.compile(r"([A-Za-z]+):")
_QUOTES = {'"': '"', "“": '”"', "„": '“”"'}  # opening quote -> the quotes that may close it
_WORD_END = frozenset("()") | frozenset(_QUOTES)
_NEGATABLE = frozenset("(") | frozenset(_QUOTES)  # what a glued "-" may negate besides a word


def split_tokens(folded: str) -> list[str]:
    """The tokens FTS5's unicode61 tokenizer finds in already folded text."""
    return _TOKEN.findall(folded)


class QueryError(ValueError):
    """A query that cannot be parsed; `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at column {position + 1}")
        self.message = message
        self.position = position


# --- the AST ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """A word or a quoted phrase as folded tokens; `prefix` makes the last token a prefix."""

    tokens: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """`base` without `excluded` (FTS5's binary NOT)."""

    base: Node
    excluded: Node


@dataclass(frozen=True, slots=True)
class Near:
    phrases: tuple[Phrase, ...]
    distance: int = DEFAULT_NEAR


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    child: Node


Node = Phrase | And | Or | Not | Near | Field


@dataclass(frozen=True, slots=True)
class Term:
    """A positive term of a query, for highlighting: folded tokens, prefix flag, field or None."""

    tokens: tuple[str, ...]
    is_prefix: bool = False
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Query:
    source: str
    ast: Node

    def fts(self) -> str:
        """The FTS5 MATCH expression; every term is a quoted string, so input cannot inject syntax."""
        return _render(self.ast)

    def terms(self) -> list[Term]:
        """The positive terms (not under a NOT), in query order, without duplicates."""
        found: dict[Term, None] = {}
        _collect(self.ast, None, found)
        return list(found)


def _quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _render(node: Node) -> str:
    match node:
        case Phrase(tokens, prefix):
            return _quote(" ".join(tokens)) + ("*" if prefix else "")
        case And(items):
            return " AND ".join(_wrapped(i) for i in items)
        case Or(items):
            return " OR ".join(_wrapped(i) for i in items)
        case Not(base, excluded):
            return f"{_wrapped(base)} NOT {_wrapped(excluded)}"
        case Near(phrases, distance):
            return f"NEAR({' '.join(_render(p) for p in phrases)}, {distance})"
        case Field(name, child):
            return f"{{{name}}} : ({_render(child)})"
    raise TypeError(node)


def _wrapped(node: Node) -> str:
    text = _render(node)
    return f"({text})" if isinstance(node, And | Or | Not) else text


def _collect(node: Node, field: str | None, found: dict[Term, None]) -> None:
    match node:
        case Phrase(tokens, prefix):
            found[Term(tokens, prefix, field)] = None
        case And(items) | Or(items):
            for item in items:
                _collect(item, field, found)
        case Not(base, _):
            _collect(base, field, found)
        case Near(phrases, _):
            for p in phrases:
                _collect(p, field, found)
        case Field(name, child):
            _collect(child, name, found)


# --- the lexer -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # WORD PHRASE ( ) OR AND NOT - FIELD NEAR , EOF
    pos: int
    text: str = ""
    tokens: tuple[str, ...] = ()
    prefix: bool = False


def _lex(s: str) -> Iterator[_Tok]:
    """Tokens of the query, lazily, so that the first problem in reading order is reported."""
    i, n = 0, len(s)
    in_near = False
    while True:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            yield _Tok("EOF", n)
            return
        c = s[i]
        if c in "()":
            in_near = in_near and c == "("  # a ")" ends NEAR(...); a "(" in it is an error later
            yield _Tok(c, i)
            i += 1
        elif c in _QUOTES:
            end = i + 1
            while end < n and s[end] not in _QUOTES[c]:
                end += 1
            if end >= n:
                raise QueryError("unclosed quote", i)
            prefix = end + 1 < n and s[end + 1] == "*"
            body = s[i + 1 : end]
            yield _Tok("PHRASE", i, body, tuple(split_tokens(fold(body))), prefix)
            i = end + 2 if prefix else end + 1
        elif in_near and c == ",":
            yield _Tok(",", i)
            i += 1
        elif c == "-" and i + 1 < n and (_TOKEN.match(s, i + 1) or s[i + 1] in _NEGATABLE):
            # Only a dash glued to what follows negates: "NATO - Ukraine" is punctuation.
            yield _Tok("-", i)
            i += 1
        else:
            end = i
            while end < n and not s[end].isspace() and s[end] not in _WORD_END:
                if in_near and s[end] == ",":
                    break
                end += 1
            word = s[i:end]
            if word in ("OR", "AND", "NOT"):
                yield _Tok(word, i)
                i = end
                continue
            after = end
            while after < n and s[after].isspace():
                after += 1
            if word == "NEAR" and after < n and s[after] == "(":
                yield _Tok("NEAR", i)
                in_near = True
                i = after + 1
                continue
            m = _FIELD_PREFIX.match(word)
            if m:
                name = m.group(1)
                if name.lower() in FIELDS:
                    yield _Tok("FIELD", i, name.lower())
                    i += m.end()
                    continue
                # A URL ("https://...") is a word; a time ("10:30") never looks like a field.
                if not word[m.end() :].startswith("//"):
                    raise QueryError(
                        f"unknown field '{name}:' (fields are {', '.join(FIELDS)};"
                        " put it in quotes to search for the words)",
                        i,
                    )
            prefix = word.endswith("*")
            yield _Tok("WORD", i, word, tuple(split_tokens(fold(word))), prefix)
            i = end


# --- the parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lexer = _lex(source)
        self.ahead: _Tok | None = None
        self.field: str | None = None  # the field filter the parser is inside, if any
        self.depth = 0

    def peek(self) -> _Tok:
        if self.ahead is None:
            self.ahead = next(self.lexer)
        return self.ahead

    def take(self) -> _Tok:
        tok = self.peek()
        self.ahead = None
        return tok

    def parse(self) -> Node:
        if not self.source.strip():
            raise QueryError("empty query", 0)
        node = self.or_()
        tok = self.peek()
        if tok.kind == ")":
            raise QueryError("unbalanced parenthesis", tok.pos)
        if node is None:
            start = len(self.source) - len(self.source.lstrip())
            raise QueryError("no searchable words in the query", start)
        return node

    def or_(self) -> Node | None:
        parts = [self.and_()]
        while self.peek().kind == "OR":
            op = self.take()
            part = self.and_()
            if part is None or parts[0] is None:
                after = self.peek()
                raise QueryError(
                    "OR needs a term on each side", after.pos if after.kind == "OR" else op.pos
                )
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return Or(_flatten(Or, parts))  # type: ignore[arg-type]

    def and_(self) -> Node | None:
        positive: list[Node] = []
        negative: list[Node] = []
        first_negation = -1
        while self.peek().kind not in ("OR", ")", "EOF"):
            tok = self.peek()
            if tok.kind == "AND":
                self.take()
                if not (positive or negative) or self.peek().kind in ("OR", ")", "EOF", "AND"):
                    raise QueryError("AND needs a term on each side", tok.pos)
            elif tok.kind in ("NOT", "-"):
                self.take()
                if first_negation < 0:
                    first_negation = tok.pos
                label = "NOT" if tok.kind == "NOT" else "'-'"
                negative.append(self.primary(required_after=label))  # type: ignore[arg-type]
            else:
                node = self.primary()
                if node is not None:
                    positive.append(node)
        if not positive:
            if negative:
                raise QueryError(
                    "nothing to exclude from: NOT and '-' need a plain term beside them, "
                    "as in 'NATO -exercise' or 'troops NOT exercise'",
                    first_negation,
                )
            return None
        base = positive[0] if len(positive) == 1 else And(_flatten(And, positive))
        if not negative:
            return base
        excluded = negative[0] if len(negative) == 1 else Or(_flatten(Or, negative))
        return Not(base, excluded)

    def primary(self, required_after: str | None = None) -> Node | None:
        """A word, phrase, (group), NEAR(...) or field filter; None for a word of punctuation."""
        tok = self.take()
        if tok.kind == "WORD" and tok.tokens:
            return Phrase(tok.tokens, tok.prefix)
        if tok.kind == "PHRASE":
            if not tok.tokens:
                raise QueryError("empty phrase", tok.pos)
            return Phrase(tok.tokens, tok.prefix)
        if tok.kind == "(":
            return self.group(tok)
        if tok.kind == "NEAR":
            return self.near(tok)
        if tok.kind == "FIELD":
            return self.field_filter(tok)
        if tok.kind == "WORD" and required_after is None:
            return None
        if required_after is None:  # only reachable through a parser bug; keep it a QueryError
            raise QueryError("unexpected input", tok.pos)
        raise QueryError(f"expected a word, phrase or (group) after {required_after}", tok.pos)

    def group(self, opening: _Tok) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"too deeply nested (at most {MAX_DEPTH} levels)", opening.pos)
        inner = self.or_()
        if self.take().kind != ")":
            raise QueryError("unbalanced parenthesis", opening.pos)
        if inner is None:
            raise QueryError("empty parentheses", opening.pos)
        self.depth -= 1
        return inner

    def field_filter(self, tok: _Tok) -> Node:
        name = tok.text
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"too deeply nested (at most {MAX_DEPTH} levels)", tok.pos)
        if self.field is not None and self.field != name:
            raise QueryError(f"'{name}:' inside '{self.field}:' can never match", tok.pos)
        outer, self.field = self.field, name
        try:
            child = self.primary(required_after=f"'{name}:'")
        finally:
            self.field = outer
        self.depth -= 1
        assert child is not None
        # A repeated filter for the same field adds nothing but nesting depth.
        return child if outer == name else Field(name, child)

    def near(self, opening: _Tok) -> Near:
        phrases: list[Phrase] = []
        distance = DEFAULT_NEAR
        while True:
            tok = self.take()
            if tok.kind == "WORD" and tok.tokens or tok.kind == "PHRASE" and tok.tokens:
                phrases.append(Phrase(tok.tokens, tok.prefix))
            elif tok.kind == "WORD":
                continue  # punctuation
            elif tok.kind == "PHRASE":
                raise QueryError("empty phrase", tok.pos)
            elif tok.kind == ",":
                num = self.take()
                if not (num.kind == "WORD" and num.text.isascii() and num.text.isdigit()):
                    raise QueryError("NEAR distance must be a whole number", num.pos)
                distance = int(num.text)
                if distance > MAX_NEAR:
                    raise QueryError(f"NEAR distance must be at most {MAX_NEAR}", num.pos)
                end = self.take()
                if end.kind != ")":
                    raise QueryError("expected ')' after the NEAR distance", end.pos)
                break
            elif tok.kind == ")":
                break
            elif tok.kind == "EOF":
                raise QueryError("NEAR( is not closed", opening.pos)
            else:
                raise QueryError("only words and phrases may appear inside NEAR(...)", tok.pos)
        if len(phrases) < 2:
            raise QueryError("NEAR needs at least two terms", opening.pos)
        return Near(tuple(phrases), distance)


def _flatten(kind: type[And] | type[Or], nodes: list[Node]) -> tuple[Node, ...]:
    out: list[Node] = []
    for node in nodes:
        out.extend(node.items if type(node) is kind else (node,))  # type: ignore[union-attr]
    return tuple(out)


def parse_query(s: str) -> Query:
    """Parse a query of the alert and search language; QueryError says what is wrong and where."""
    return Query(s, _Parser(s).parse())
