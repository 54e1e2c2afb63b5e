"""Matching many rules against one document at a time: the trigger-word prefilter,
and each hit's terms and snippet."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.rules.query import And, Node, Not, Or, Query, Term, satisfied_terms
from monitor.rules.text import Document, Field, word_pattern

SNIPPET_CHARS = 240
SNIPPET_LEAD = 80  # characters of context before the first match
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Hit:
    """One rule matching one document."""

    rule: str
    terms: tuple[str, ...]  # as written in the query, in query order, each once
    snippet: str


def triggers(node: Node) -> frozenset[str] | None:
    """Words of which a document must contain at least one (in any field) for ``node``
    to match it, or None when no such set is known (a term of prefixes only, NOT).

    :class:`Matcher` tests a rule only on documents holding one of its triggers,
    so a thousand rules cost little more than the few that could match.
    """
    if isinstance(node, Term):
        # Any required word will do; the longest is likely the rarest.
        return frozenset([max(node.required, key=len)]) if node.required else None
    if isinstance(node, Not):
        return None
    sets = [triggers(c) for c in node.children]
    if isinstance(node, And):
        known = [t for t in sets if t is not None]
        return min(known, key=len) if known else None
    if any(t is None for t in sets):
        return None
    return frozenset().union(*(t for t in sets if t is not None))


class Matcher:
    """A set of named rules, matched together against one document at a time."""

    def __init__(self, rules: Iterable[tuple[str, Query]]) -> None:
        self.rules = tuple(rules)
        self._always: list[int] = []  # rules without triggers: tested on every document
        self._by_word: dict[str, list[int]] = {}
        for i, (_, query) in enumerate(self.rules):
            words = triggers(query.node)
            if words is None:
                self._always.append(i)
            for w in words or ():
                self._by_word.setdefault(w, []).append(i)
        self._trigger_words = frozenset(self._by_word)

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, title: str | None, text: str | None) -> list[Hit]:
        """The rules that match, in rule order, each with its terms and a snippet."""
        if not self.rules:
            return []
        return self.match_document(Document(title, text))

    def match_document(self, doc: Document) -> list[Hit]:
        """:meth:`match` for a document already split into words."""
        if not self.rules:
            return []
        # Intersections cost the smaller set's size: the trigger words, for few rules.
        present = (self._trigger_words & doc.title.word_set) | (
            self._trigger_words & doc.text.word_set)
        candidates = set(self._always)
        for w in present:
            candidates.update(self._by_word[w])
        hits = []
        for i in sorted(candidates):
            name, query = self.rules[i]
            if query.test(doc):
                hits.append(hit(name, query, doc))
        return hits


def hit(rule: str, query: Query, doc: Document) -> Hit:
    """The :class:`Hit` for a query known to match ``doc``."""
    terms = satisfied_terms(query.node, doc)
    labels = list(dict.fromkeys(t.label() for t in terms))
    return Hit(rule, tuple(labels), snippet(doc, terms))


def snippet(doc: Document, terms: Sequence[Term], width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of the text around the earliest match of ``terms``
    in it, cut at word boundaries, "…" marking a cut. The text's start when the
    terms matched only in the title."""
    text = doc.text
    first = min((i for t in terms if t.scope != "title"
                 for i in [text.find(t)] if i is not None), default=None)
    source = text.source
    start = 0
    if first is not None:
        at = text.offset(first)
        start = max(0, at - SNIPPET_LEAD)
        space = _SPACE.search(source, start, at) if start > 0 else None
        if space:  # begin on a whole word
            start = space.end()
    end = min(len(source), start + width)
    if end < len(source):  # end on a whole word
        cut = max((m.start() for m in _SPACE.finditer(source, start, end)), default=start)
        end = cut if cut > start else end
    body = " ".join(source[start:end].split())
    if not body:
        return ""
    return ("…" if start > 0 else "") + body + ("…" if end < len(source) else "")


def terms_labelled(query: Query, labels: Iterable[str]) -> list[Term]:
    """The terms of ``query`` whose :meth:`Term.label` is one of ``labels`` (an alert's
    stored terms), in query order."""
    wanted = set(labels)
    found: list[Term] = []

    def walk(node: Node) -> None:
        if isinstance(node, Term):
            if node.label() in wanted:
                found.append(node)
        elif isinstance(node, Not):
            walk(node.child)
        elif isinstance(node, And | Or):
            for child in node.children:
                walk(child)

    walk(query.node)
    return found


def highlight(source: str, terms: Sequence[Term]) -> list[tuple[str, bool]]:
    """``source`` (NFC-normalised) cut into pieces, True for each piece where one of
    ``terms`` occurs, compared as rules compare words (folded, whole words, prefixes).
    Joining the pieces gives the text back. A field scope is ignored: the caller
    picks which text to mark."""
    field = Field(source)
    text = field.source
    runs: list[tuple[int, int]] = []  # (first word, last word) of each occurrence
    for term in terms:
        n = len(term.words)
        runs += [(i, i + n - 1) for i in range(len(field.words) - n + 1)
                 if all(w.matches(field.words[i + k]) for k, w in enumerate(term.words))]
    if not runs:
        return [(text, False)] if text else []
    merged: list[list[int]] = []
    for first, last in sorted(runs):
        if merged and first <= merged[-1][1]:  # overlapping occurrences become one
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    spans = [m.span() for m in word_pattern().finditer(text)]
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for first, last in merged:
        start, end = spans[first][0], spans[last][1]
        if start > pos:
            pieces.append((text[pos:start], False))
        pieces.append((text[start:end], True))
        pos = end
    if pos < len(text):
        pieces.append((text[pos:], False))
    return pieces
