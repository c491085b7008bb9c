"""Pure: the snippet of a matched post with its matched words marked, and where a video says them."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence

from monitor.query import And, Field, Near, Node, Not, Or, Phrase, Query, Term, split_tokens
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
def _word_re() -> re.Pattern[str]:
    """Words as a reader sees them: letters and numbers with their combining marks and joiners.

    FTS5 splits Devanagari or Thai at vowel signs; a highlight must still wrap the whole word.
    """
    from monitor import _marks

    if unicodedata.unidata_version == _marks.UNIDATA_VERSION:
        ranges = [tuple(int(x, 16) for x in r.split("-")) for r in _marks.MARKS.split()]
    else:
        ranges = mark_ranges()
    marks = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(rf"(?:[^\W_]|[{marks}\u200c\u200d\ue000-\uf8ff])+")


# A word's folded tokens, shared by every snippet of the process: news repeats its words.
_FOLDED: dict[str, list[str]] = {}
_FOLDED_MAX = 200_000


class _Doc:
    """A text as words (spans of the original) and as the folded tokens the index holds."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.spans: list[tuple[int, int]] = []
        self.tokens: list[str] = []
        self.word_of: list[int] = []  # token index -> word index
        folded = _FOLDED
        if len(folded) > _FOLDED_MAX:
            folded.clear()
        for m in _word_re().finditer(text):
            word = m.group()
            toks = folded.get(word)
            if toks is None:
                toks = folded[word] = split_tokens(fold(word))
            if not toks:
                continue
            self.tokens.extend(toks)
            self.word_of.extend([len(self.spans)] * len(toks))
            self.spans.append(m.span())


def _find_hits(terms: Sequence[Term], tokens: list[str]) -> list[_Hit]:
    """Every place a term occurs in the token list; a prefix term's last token is a prefix."""
    at: dict[str, list[int]] = {}
    for i, tok in enumerate(tokens):
        at.setdefault(tok, []).append(i)
    hits: list[_Hit] = []
    n_tokens = len(tokens)
    for t_idx, term in enumerate(terms):
        need = term.tokens
        n = len(need)
        if n == 1 and term.is_prefix:
            starts: Sequence[int] = [i for i, tok in enumerate(tokens) if tok.startswith(need[0])]
        else:
            starts = at.get(need[0], ())
        for i in starts:
            if i + n > n_tokens:
                continue
            if all(tokens[i + k] == need[k] for k in range(1, n - 1 if term.is_prefix else n)) and (
                not term.is_prefix or tokens[i + n - 1].startswith(need[-1])
            ):
                hits.append((t_idx, i, i + n - 1))
    return hits


def snippet(query: Query, fields: Mapping[str, str | None], width: int = 30) -> str:
    """About `width` words of the field that holds most of the query, matched words in [brackets]."""
    width = max(1, width)
    terms = query.terms()
    best: tuple[int, _Doc, list[_Hit]] | None = None
    for name in _FIELD_ORDER:
        value = fields.get(name)
        if not value:
            continue
        usable = [i for i, t in enumerate(terms) if t.field in (None, name)]
        if best is not None and not _may_hold(value, [terms[i] for i in usable]):
            continue  # no hit possible, so it can't beat the field already chosen
        doc = _Doc(value)
        hits = [(usable[t], a, b) for t, a, b in _find_hits([terms[i] for i in usable], doc.tokens)]
        distinct = len({h[0] for h in hits})
        if best is None or distinct > best[0]:
            best = (distinct, doc, hits)
    if best is None:
        return ""
    _, doc, hits = best
    word_hits = [(t, doc.word_of[a], doc.word_of[b]) for t, a, b in hits]
    return _render(doc, word_hits, width)


def _may_hold(value: str, terms: Sequence[Term]) -> bool:
    """False only when no term can occur in `value`: each hit's first token (or prefix) is a
    substring of the folded text, so a cheap substring test rules most fields out."""
    folded = fold(value)
    return any(t.tokens and t.tokens[0] in folded for t in terms)


# The text's own brackets ("[UPDATE 2]", a caption's "[Music]") would read as marks, to a
# reader and to highlight_html alike: outside the marks they become parentheses.
_OWN_BRACKETS = str.maketrans("[]", "()")


def _render(doc: _Doc, hits: list[_Hit], width: int) -> str:
    n = len(doc.spans)
    if n == 0:
        return " ".join(doc.text.translate(_OWN_BRACKETS).split())
    start = _window_start(n, hits, width)
    end = min(n, start + width)
    marked = {w for _, a, b in hits for w in range(a, b + 1) if start <= w < end}
    text = doc.text
    out: list[str] = ["... "] if start > 0 else []
    pos = doc.spans[start][0] if start > 0 else 0
    for w in range(start, end):
        a, b = doc.spans[w]
        out.append(text[pos:a].translate(_OWN_BRACKETS))
        word = text[a:b].translate(_OWN_BRACKETS)
        out.append(f"[{word}]" if w in marked else word)
        pos = b
    if end == n:
        out.append(text[pos:].translate(_OWN_BRACKETS))
    else:
        out.append(" ...")
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
