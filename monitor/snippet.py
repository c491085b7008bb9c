"""Pure: the snippet of a matched post with its matched words marked, and where a video says them."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from monitor.query import (
    And,
    Field,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Query,
    QueryError,
    Term,
    parse_query,
    split_tokens,
)
from monitor.text import fold

# Tie-break between fields that hold as many terms: the body gives the most useful context.
_FIELD_ORDER = ("text", "transcript", "title", "author")
_SEGMENT_WINDOW = 3  # a sentence rarely straddles more captions than this
_Hit = tuple[int, int, int]  # (term index, first, last): tokens, or words once mapped


def mark_ranges() -> list[tuple[int, int]]:
    """Code point ranges of combining marks (Unicode category M), from this Python's tables."""
    ranges: list[tuple[int, int]] = []
    start = -1
    for cp in [*range(0x20000), *range(0xE0100, 0xE01F0), 0xE01F0]:
        is_mark = unicodedata.category(chr(cp)).startswith("M")
        if is_mark and start < 0:
            start = cp
        elif not is_mark and start >= 0:
            ranges.append((start, cp - 1))
            start = -1
    return ranges


@functools.cache
def _known_marks() -> list[tuple[int, int]]:
    from monitor import _marks

    if unicodedata.unidata_version == _marks.UNIDATA_VERSION:
        return [(int(a, 16), int(b, 16)) for a, b in (r.split("-") for r in _marks.MARKS.split())]
    return mark_ranges()


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


@functools.cache
def _word_re() -> re.Pattern[str]:
    """Words as a reader sees them: letters and numbers with their combining marks and joiners.

    FTS5 splits Devanagari or Thai at vowel signs; a highlight must still wrap the whole word.
    """
    return re.compile(rf"(?:[^\W_]|[{_char_class(_known_marks())}\u200c\u200d\ue000-\uf8ff])+")


@functools.cache
def _may_need_word_re() -> re.Pattern[str]:
    """A character that may need `_word_re()`: a mark, a joiner or private use of the Basic
    Multilingual Plane, or any character beyond it.

    A class of BMP characters alone is a bitmap to SRE, one lookup a character (2 us for a
    paragraph, where testing each distinct character's category took 30 us); the few marks
    beyond the BMP would make it a list of ranges, so every astral character is let through
    to the exact test instead.
    """
    bmp = _char_class((a, min(b, 0xFFFF)) for a, b in _known_marks() if a <= 0xFFFF)
    return re.compile(f"[{bmp}\u200c\u200d\ue000-\uf8ff\U00010000-\U0010ffff]")


# Words in a text without combining marks, joiners or private-use characters: the same
# words as `_word_re()` finds, three times faster (its big character class is slow to test).
_PLAIN_WORD = re.compile(r"[^\W_]+")


def _word_rx(text: str) -> re.Pattern[str]:
    """The pattern that finds the words of `text`: `_word_re()`, or a faster one that finds
    the same words in a text without combining marks, joiners or private-use characters."""
    if text.isascii() or _may_need_word_re().search(text) is None:  # most text
        return _PLAIN_WORD
    for c in set(text):
        if c >= "\u0300" and (
            unicodedata.category(c)[0] == "M" or c in "\u200c\u200d" or "\ue000" <= c <= "\uf8ff"
        ):
            return _word_re()
    return _PLAIN_WORD


# A word's folded tokens, shared by every snippet of the process: news repeats its words.
_FOLDED: dict[str, list[str]] = {}
_FOLDED_MAX = 200_000

# The text's own brackets ("[UPDATE 2]", a caption's "[Music]") would read as marks, to a
# reader and to highlight_html alike: outside the marks they become parentheses. One code
# point for one, so the words' spans hold in the translated text too.
_OWN_BRACKETS = str.maketrans("[]", "()")


def _tokens_of(words: list[str]) -> list[list[str]]:
    """Each word's folded tokens (none for a word of marks alone)."""
    folded = _FOLDED
    if len(folded) > _FOLDED_MAX:
        folded.clear()
    toks = list(map(folded.get, words))
    if None in toks:
        for i, word in enumerate(words):
            if toks[i] is None:
                toks[i] = folded[word] = split_tokens(fold(word))
    return toks  # type: ignore[return-value]


class _Doc:
    """A text as words (spans of the original) and as the folded tokens the index holds.

    Made once per text for every query asked of it: which terms it holds is found once for
    all of them, where they are only for the text a snippet is made of.
    """

    __slots__ = (
        "text", "_words", "_rx", "tokens", "tokset", "_joined", "word_of", "n_words", "_keep",
        "present", "upto", "_shown",
    )  # fmt: skip

    def __init__(self, text: str) -> None:
        self.text = text
        self._keep: list[int] | None = None  # the words that have tokens, when not all do
        self._shown: str | None = None
        self._joined: str | None = None
        self.word_of: list[int] | None = None  # token index -> word index; None: the same
        self.present: set[int] = set()  # ids of the terms it holds (`Snippets`), ...
        self.upto = 0  # ... of the first `upto` terms
        if text.isascii():
            # An ASCII word is one token, itself in lower case: the words wait for a snippet.
            self._words: list[str] | None = None
            self._rx = _PLAIN_WORD
            self.tokens = _PLAIN_WORD.findall(text.lower())
            self.tokset = set(self.tokens)
            self.n_words = len(self.tokens)
            return
        self._rx = _word_rx(text)
        self._words = words = self._rx.findall(text)
        toks = _tokens_of(words)
        self.tokens = tokens = [t for ts in toks for t in ts]
        self.tokset = set(tokens)
        self.n_words = len(words)
        if len(tokens) == len(words) and all(toks):  # one token a word: nearly every text
            return
        keep, word_of = [], []
        for i, ts in enumerate(toks):
            if ts:
                word_of.extend([len(keep)] * len(ts))
                keep.append(i)
        self._keep, self.word_of, self.n_words = keep, word_of, len(keep)

    def has(self, term: Term) -> bool:
        """Whether a phrase or a prefix occurs: a substring test on the tokens, space-joined."""
        if self._joined is None:
            self._joined = " " + " ".join(self.tokens) + " "
        return (" " + " ".join(term.tokens) + ("" if term.is_prefix else " ")) in self._joined

    def spans(self, start: int, end: int) -> list[tuple[int, int]]:
        """Where words `start` to `end` (excluded) are in the text."""
        if self._keep is None:  # word i is the regex's i-th match
            # The words are known: each is the first occurrence of itself after the one before
            # (only characters outside words lie between two), which str.find finds at a
            # fraction of what running the word pattern over the text again costs.
            if self._words is None:  # ASCII: the tokens are the words, in lower case
                words, text = self.tokens, self.text.lower()
            else:
                words, text = self._words, self.text
            find, pos = text.find, 0
            for word in words[:start]:
                pos = find(word, pos) + len(word)
            spans = []
            for word in words[start:end]:
                at = find(word, pos)
                pos = at + len(word)
                spans.append((at, pos))
            return spans
        every = [m.span() for m in self._rx.finditer(self.text)]
        return [every[i] for i in self._keep[start:end]]

    def hits(self, terms: Sequence[tuple[int, Term]]) -> list[_Hit]:
        """(term id, first word, last word) of each place these terms occur."""
        tokens = self.tokens
        hits = [(terms[t][0], a, b) for t, a, b in _find_hits([t for _, t in terms], tokens)]
        if self.word_of is not None:
            word_of = self.word_of
            hits = [(t, word_of[a], word_of[b]) for t, a, b in hits]
        return hits

    def shown(self) -> str:
        """The text as a snippet shows it: its own brackets as parentheses."""
        if self._shown is None:
            text = self.text
            if "[" in text or "]" in text:  # rare; translate() with a table is slow
                text = text.translate(_OWN_BRACKETS)
            self._shown = text
        return self._shown


def _find_hits(terms: Sequence[Term], tokens: list[str]) -> list[_Hit]:
    """Every place a term occurs in the token list; a prefix term's last token is a prefix."""
    hits: list[_Hit] = []
    distinct: set[str] | None = None
    n_tokens = len(tokens)
    positions = _positions
    if n_tokens > 500:  # a transcript: one pass to index it beats a scan per token
        at: dict[str, list[int]] = {}
        for i, tok in enumerate(tokens):
            at.setdefault(tok, []).append(i)
        positions = lambda _, tok: at.get(tok, [])  # noqa: E731
    for t_idx, term in enumerate(terms):
        need = term.tokens
        n = len(need)
        if not n:
            continue
        if n == 1 and term.is_prefix:
            if distinct is None:
                distinct = set(tokens)
            for tok in [t for t in distinct if t.startswith(need[0])]:
                hits += [(t_idx, i, i) for i in positions(tokens, tok)]
            continue
        for i in positions(tokens, need[0]):
            if i + n > n_tokens:
                continue
            if all(tokens[i + k] == need[k] for k in range(1, n - 1 if term.is_prefix else n)) and (
                not term.is_prefix or tokens[i + n - 1].startswith(need[-1])
            ):
                hits.append((t_idx, i, i + n - 1))
    return hits


def _positions(tokens: list[str], token: str) -> list[int]:
    """Where `token` is in `tokens` (list.index does the scanning)."""
    found: list[int] = []
    index, i = tokens.index, -1
    try:
        while True:
            i = index(token, i + 1)
            found.append(i)
    except ValueError:
        return found


class Snippets:
    """Snippets of many queries over the same posts, each text read once for all of them.

    A post that ten alerts match needs ten snippets; made one by one, each read the post's
    text again, which was most of a match's cost when the alerts are broad. Here each text
    is tokenised once, the terms of every query are looked for in it at once (a set
    intersection for words), and queries that find the same terms in a post share its
    snippet, made once. Holds the texts it has read: one instance serves a pass.
    """

    def __init__(self, queries: Iterable[Query] = ()) -> None:
        self._docs: dict[str, _Doc] = {}  # by text: an author's name is read once, too
        self._ids: dict[Term, int] = {}
        self._terms: list[Term] = []  # by id
        self._words: dict[str, list[int]] = {}  # a one-word term's token -> the ids
        self._others: list[tuple[int, Term]] = []  # phrases and prefixes
        # id(query) -> (query, the ids of its terms, and of those usable in each field)
        self._queries: dict[int, tuple[Query, frozenset[int], dict[str, frozenset[int]]]] = {}
        self._same: dict[tuple[int, frozenset[int], int], tuple[object, str]] = {}
        self._made: dict[tuple[int, frozenset[int], int], str] = {}
        for query in queries:
            self._query(query)

    def _query(self, query: Query) -> tuple[Query, frozenset[int], dict[str, frozenset[int]]]:
        known = self._queries.get(id(query))
        if known is None or known[0] is not query:
            ids = []
            for term in query.terms():
                tid = self._ids.get(term)
                if tid is None:
                    tid = self._ids[term] = len(self._terms)
                    self._terms.append(term)
                    if len(term.tokens) == 1 and not term.is_prefix:
                        self._words.setdefault(term.tokens[0], []).append(tid)
                    else:
                        self._others.append((tid, term))
                ids.append(tid)
            terms = self._terms
            by_field = {
                n: frozenset(i for i in ids if terms[i].field in (None, n)) for n in _FIELD_ORDER
            }
            known = self._queries[id(query)] = (query, frozenset(ids), by_field)
        return known

    def _doc(self, text: str) -> _Doc:
        doc = self._docs.get(text)
        if doc is None:
            doc = self._docs[text] = _Doc(text)
        if doc.upto < len(self._terms):  # terms it was not asked about yet
            present = doc.present
            if doc.upto == 0:
                for tok in doc.tokset.intersection(self._words):
                    present.update(self._words[tok])
            else:
                terms = self._terms
                for tid in range(doc.upto, len(terms)):
                    tokens = terms[tid].tokens
                    if len(tokens) == 1 and not terms[tid].is_prefix and tokens[0] in doc.tokset:
                        present.add(tid)
            present.update(tid for tid, term in self._others if tid >= doc.upto and doc.has(term))
            doc.upto = len(self._terms)
        return doc

    def snippet(self, query: Query, fields: Mapping[str, str | None], width: int = 30) -> str:
        """About `width` words of the field that holds most of the query, matched words in [brackets]."""
        width = max(1, width)
        _, terms, by_field = self._query(query)
        # A snippet depends on the query's terms alone: queries that differ only in what
        # they exclude (`-Gaza`) share it.
        same = self._same.get((id(fields), terms, width))
        if same is not None and same[0] is fields:
            return same[1]
        best: tuple[int, _Doc, frozenset[int]] | None = None
        for name in _FIELD_ORDER:
            value = fields.get(name)
            if not value:
                continue
            if (
                best is not None
                and len(value) > _LONG
                and value not in self._docs
                and not _may_hold(value, [self._terms[i] for i in by_field[name]])
            ):
                # A long field (a transcript) is not read for nothing: without any of the
                # query's terms, it can't beat the field already chosen.
                continue
            doc = self._doc(value)
            present = by_field[name] & doc.present
            if best is None or len(present) > best[0]:
                best = (len(present), doc, present)
        made = ""
        if best is not None:
            _, doc, present = best
            made_key = (id(doc), present, width)  # the doc lives as long as this instance
            made = self._made.get(made_key, "")
            if not made:
                hits = doc.hits([(i, self._terms[i]) for i in sorted(present)])
                made = self._made[made_key] = _render(doc, hits, width)
        self._same[id(fields), terms, width] = (fields, made)
        return made


_LONG = 2_000  # characters: a field this long is first tested for a term before it is read


class StoredSnippets:
    """Snippets of stored matches that were not given one when they matched (`matches.snippet`
    is NULL): made from the query the match row keeps, which the alert had then.

    One instance serves one reader's page or output: it parses each query once and reads
    each text once (`Snippets`).
    """

    def __init__(self) -> None:
        self._snippets = Snippets()
        self._queries: dict[str, Query | None] = {}

    def snippet(self, query: str | None, fields: Mapping[str, str | None]) -> str:
        """The snippet of a match of `query` (its text) on a post's fields; "" without one."""
        if not query:
            return ""
        parsed = self._queries.get(query, _UNPARSED)
        if parsed is _UNPARSED:
            try:
                parsed = parse_query(query)
            except QueryError:  # an archive written by hand; the post is still shown
                parsed = None
            self._queries[query] = parsed
        return "" if parsed is None else self._snippets.snippet(parsed, fields)


_UNPARSED = object()


def snippet(query: Query, fields: Mapping[str, str | None], width: int = 30) -> str:
    """About `width` words of the field that holds most of the query, matched words in [brackets]."""
    return Snippets().snippet(query, fields, width)


def _may_hold(value: str, terms: Sequence[Term]) -> bool:
    """False only when no term can occur in `value`: each hit's first token (or prefix) is a
    substring of the folded text, so a cheap substring test rules most fields out."""
    folded = fold(value)
    return any(t.tokens and t.tokens[0] in folded for t in terms)


def _render(doc: _Doc, hits: list[_Hit], width: int) -> str:
    n = doc.n_words
    shown = doc.shown()
    if n == 0:
        return " ".join(shown.split())
    start = _window_start(n, hits, width)
    end = min(n, start + width)
    marked = sorted({w for _, a, b in hits for w in range(a, b + 1) if start <= w < end})
    spans = doc.spans(start, end)
    out: list[str] = ["... "] if start > 0 else []
    pos = spans[0][0] if start > 0 else 0
    # Only the marked words need a piece of their own; the words between go as one slice.
    for w in marked:
        a, b = spans[w - start]
        out += (shown[pos:a], "[", shown[a:b], "]")
        pos = b
    if end == n:
        out.append(shown[pos:])
    else:
        out += (shown[pos : spans[-1][1]], " ...")
    return " ".join("".join(out).split())


def _window_start(n: int, hits: list[_Hit], width: int) -> int:
    """First word of the `width`-word window with the most distinct terms, matches centred."""
    if n <= width or not hits:
        return 0
    hits = sorted(hits, key=lambda h: h[1])
    best_key, best = (-1, -1), (0, 0)
    for left, (_, first, _) in enumerate(hits):
        limit = first + width
        inside: list[_Hit] = []
        # A window holds few hits (about `width` at most), so this stays near linear.
        for j in range(left, len(hits)):
            h = hits[j]
            if h[1] >= limit:
                break
            if h[2] < limit:
                inside.append(h)
        key = (len({h[0] for h in inside}), len(inside))
        if key > best_key:
            last = max((h[2] for h in inside), default=first)
            best_key, best = key, (first, last)
    first, last = best
    slack = max(0, width - (last - first + 1))
    return max(0, min(first - slack // 2, n - width))


def transcript_offset(query: Query, segments: Sequence[tuple[float, str]]) -> float | None:
    """Start second of the segment where the query is first said; None when its terms never are.

    Segments are in time order. A phrase may run over caption boundaries, so the tokens are read
    as one stream and the query is tested on windows of a few consecutive segments.
    """
    terms = [t for t in query.terms() if t.field in (None, "transcript")]
    if not terms or not segments:
        return None
    tokens: list[str] = []
    segment_of: list[int] = []
    for idx, (_, text) in enumerate(segments):
        doc = _Doc(text or "")
        tokens.extend(doc.tokens)
        segment_of.extend([idx] * len(doc.tokens))
    found_in: dict[int, set[int]] = {}
    for t, first, _ in _find_hits(terms, tokens):
        found_in.setdefault(segment_of[first], set()).add(t)
    if not found_in:
        return None
    fallback, fallback_size = -1, 0
    for seg in sorted(found_in):
        found: set[int] = set()
        for s in range(seg, seg + _SEGMENT_WINDOW):
            found |= found_in.get(s, set())
        if _satisfied(query.ast, None, {terms[i] for i in found}):
            return float(segments[seg][0])
        if len(found) > fallback_size:
            fallback, fallback_size = seg, len(found)
    return float(segments[fallback][0])


def _satisfied(node: Node, field: str | None, found: set[Term]) -> bool:
    """Whether a window of the transcript meets the query; parts about other fields count as met."""
    match node:
        case Phrase(tokens, prefix):
            return Term(tokens, prefix, field) in found
        case And(items):
            return all(_satisfied(i, field, found) for i in items)
        case Or(items):
            return any(_satisfied(i, field, found) for i in items)
        case Not(base, _):
            # The post matched, so what is excluded is absent; only the base can locate it.
            return _satisfied(base, field, found)
        case Near(phrases, _):
            return all(_satisfied(p, field, found) for p in phrases)
        case Field(name, child):
            return name != "transcript" or _satisfied(child, name, found)
    return False
