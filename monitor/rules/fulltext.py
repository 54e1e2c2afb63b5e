"""The full-text index's side of the query language (pure): what an item puts into the
index, and a query compiled into the index's own language as a *prefilter*.

The index holds the words exactly as rules see them (:func:`monitor.rules.text.words_of`:
folded, split the same way), so that the database never folds or splits a word
differently from :class:`monitor.rules.Matcher`:

- SQLite: an FTS5 table whose ``ascii`` tokenizer (with ``_`` a word character) keeps
  each folded word whole, as one token: every non-ASCII character is a token character
  there and the folded words hold only letters, digits and ``_``.
- PostgreSQL: a ``tsvector`` written out as a literal (no text search configuration,
  parser or dictionary touches it): title words at weight A, text words at D, with
  their positions (for ``ts_rank_cd``).

A compiled query finds every item the query matches, and perhaps more (a *superset*):
the caller verifies each candidate with the query itself (:meth:`Query.matches`), so
search, ``rules test`` and alerts agree word for word. :attr:`Compiled.exact` says
when the index answers exactly (no item is dropped by verification); ``expr`` None
says the index cannot narrow the query at all (see :func:`compile_query`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from monitor.rules.query import And, Node, Not, Or, Term
from monitor.rules.text import Document, words_of

Dialect = Literal["sqlite", "postgresql"]

# A word that folds to nothing (a lone combining mark) is a word all the same to a
# phrase (monitor.rules.text.Field keeps it as ""): FTS5 gets this stand-in, which no
# folded word can equal (it is neither a letter nor a digit), so that phrases stay
# adjacent exactly where rules find them adjacent.
EMPTY_WORD = "\u00b7"

# tsvector limits (PostgreSQL's documentation, "Text Search Limitations"): positions
# run to 16,383, and a lexeme keeps at most 256 of them. Fewer are kept: positions
# serve only ts_rank_cd (which words of a query stand close together), for which a
# word's first 16 occurrences in each field tell as much as all of them; the tsvector
# of a corpus article is then a third smaller, and quicker to write.
_MAX_POSITION = 16383
TITLE = "^"  # a title word again, unweighted (see IndexedText.tsvector)
CUT = "\u00b7"  # a word whose positions were cut short (neither is a folded word's letter)
_TITLE_POSITIONS = 16  # per lexeme: the title's first, then the text's
_TEXT_POSITIONS = 16


@dataclass(frozen=True)
class IndexedText:
    """An item as the index holds it: its title's and text's folded words."""

    title: tuple[str, ...]
    text: tuple[str, ...]

    @classmethod
    def of(cls, title: str | None, text: str | None) -> IndexedText:
        return cls(tuple(words_of(title or "")), tuple(words_of(text or "")))

    @classmethod
    def of_document(cls, doc: Document) -> IndexedText:
        """The words a rule match already folded (the same as :meth:`of` the texts)."""
        return cls(tuple(doc.title.words), tuple(doc.text.words))

    def fts5(self) -> tuple[str, str]:
        """The FTS5 row's two columns (title, body): the words, space-separated."""
        return _joined(self.title), _joined(self.text)

    def tsvector(self) -> str:
        """The PostgreSQL ``tsvector`` literal.

        Every word with its positions (the title's at weight A, numbered first; the
        text's after a gap, so that no phrase runs from one into the other), at most
        16 per field (see _TEXT_POSITIONS); then each title word again as ``^word``
        (so that ``title:`` needs no weight, which GIN cannot check without reading
        every candidate's vector); then ``·word`` for each word whose positions were
        cut short (more than 16 in a field, or past PostgreSQL's last position), which
        tells a phrase query that this document's positions cannot be trusted for it.
        """
        title = _spots(self.title, 1)
        text = _spots(self.text, len(self.title) + 2)
        out = []
        for w, spots in text.items():
            kept = ",".join(map(str, _positions(spots, _TEXT_POSITIONS)))
            in_title = title.get(w)
            if in_title:
                head = ",".join(f"{p}A" for p in _positions(in_title, _TITLE_POSITIONS))
                out.append(f"{_quote(w)}:{head},{kept}")
            else:
                out.append(f"{_quote(w)}:{kept}")
            if len(spots) > _TEXT_POSITIONS or spots[-1] > _MAX_POSITION:
                out.append(_quote(CUT + w))
        for w, spots in title.items():
            kept = ",".join(map(str, _positions(spots, _TITLE_POSITIONS)))
            if w not in text:
                out.append(f"{_quote(w)}:{','.join(p + 'A' for p in kept.split(','))}")
            out.append(f"{_quote(TITLE + w)}:{kept}")
            if (len(spots) > _TITLE_POSITIONS or spots[-1] > _MAX_POSITION) \
                    and not (w in text and (len(text[w]) > _TEXT_POSITIONS
                                            or text[w][-1] > _MAX_POSITION)):
                out.append(_quote(CUT + w))
        return " ".join(out)


def _spots(words: tuple[str, ...], first: int) -> dict[str, list[int]]:
    """Each word's positions, numbered from ``first`` ("" words take a position but
    are not indexed)."""
    spots: dict[str, list[int]] = {}
    for p, w in enumerate(words, first):
        if w:
            at = spots.get(w)
            if at is None:
                spots[w] = [p]
            else:
                at.append(p)
    return spots


def _positions(spots: list[int], cap: int) -> list[int]:
    """The first ``cap`` of ``spots``, none past PostgreSQL's last position."""
    kept = spots[:cap]
    return kept if kept[-1] <= _MAX_POSITION else sorted({min(p, _MAX_POSITION)
                                                         for p in kept})


def _joined(words: tuple[str, ...]) -> str:
    return " ".join(w or EMPTY_WORD for w in words)


def _quote(word: str) -> str:
    """A tsvector/tsquery lexeme literal (folded words hold no quote or backslash:
    only letters, digits and ``_``; escaped all the same)."""
    if "'" in word or "\\" in word:
        word = word.replace("\\", "\\\\").replace("'", "''")
    return f"'{word}'"


@dataclass(frozen=True)
class Compiled:
    """A query in the index's language. ``expr`` None: the index cannot narrow it (a
    branch that matches by what an item lacks); ``exact``: the index's answer is the
    query's answer, nothing for verification to drop."""

    expr: str | None
    exact: bool
    # PostgreSQL: the same query without what GIN must recheck by reading each
    # candidate (phrases, weights): the index lookup; ``expr`` then filters what it
    # found in the range searched. None where it is ``expr`` itself.
    lookup: str | None = None


def compile_query(node: Node, dialect: Dialect) -> Compiled:
    """``node`` as an FTS5 ``MATCH`` expression (``dialect`` "sqlite") or a ``tsquery``
    literal ("postgresql").

    Negations are first pushed down to the terms (De Morgan). A negated term narrows
    the answer only beside a positive one in an AND, and only where the index holds
    the term exactly (else dropping what it finds could drop a match); elsewhere it
    is left to verification. Exact per dialect: FTS5 holds words, phrases, prefixes
    and fields exactly; a ``tsquery`` holds words, prefixes and fields exactly but a
    phrase only as all of its words (positions there are capped).
    """
    pushed = _push_not(node, False)
    if dialect == "sqlite":
        return _compile(pushed, _Fts5())
    full = _compile(pushed, _TsQuery())
    lookup = _compile(pushed, _TsLookup())
    if full.expr is None or lookup.expr is None or lookup.expr == full.expr:
        return full
    return Compiled(full.expr, full.exact, lookup.expr)


def _push_not(node: Node, negate: bool) -> Node:
    if isinstance(node, Term):
        return Not(node) if negate else node
    if isinstance(node, Not):
        return _push_not(node.child, not negate)
    children = tuple(_push_not(c, negate) for c in node.children)
    flip = isinstance(node, And) == negate  # NOT (a AND b) = NOT a OR NOT b
    return Or(children) if flip else And(children)


class _Emitter:
    def term(self, term: Term) -> Compiled:
        raise NotImplementedError

    def and_(self, parts: list[str], negated: list[str]) -> str:
        raise NotImplementedError

    def or_(self, parts: list[str]) -> str:
        raise NotImplementedError


def _compile(node: Node, emit: _Emitter) -> Compiled:
    if isinstance(node, Term):
        return emit.term(node)
    if isinstance(node, Not):  # of a term (see _push_not): not something an index finds
        return Compiled(None, False)
    if isinstance(node, Or):
        parts = [_compile(c, emit) for c in node.children]
        if any(p.expr is None for p in parts):
            return Compiled(None, False)
        return Compiled(emit.or_([p.expr for p in parts if p.expr is not None]),
                        all(p.exact for p in parts))
    positive: list[str] = []
    negated: list[str] = []
    exact = True
    for c in node.children:
        if isinstance(c, Not) and isinstance(c.child, Term):
            inner = emit.term(c.child)
            if inner.exact and inner.expr is not None:
                negated.append(inner.expr)
            else:
                exact = False
            continue
        part = _compile(c, emit)
        exact = exact and part.exact
        if part.expr is not None:
            positive.append(part.expr)
    if not positive:
        return Compiled(None, False)
    return Compiled(emit.and_(positive, negated), exact)


class _Fts5(_Emitter):
    """FTS5 query syntax: "strings", + joins a phrase, * after a string makes its last
    token a prefix, ``col : (...)`` limits to a column; NOT is binary."""

    def term(self, term: Term) -> Compiled:
        phrase = " + ".join(f'"{_fts5_string(w.text)}"' + (" *" if w.prefix else "")
                            for w in term.words)
        if term.scope is not None:
            phrase = f"{'title' if term.scope == 'title' else 'body'} : ({phrase})"
        return Compiled(phrase, True)

    def and_(self, parts: list[str], negated: list[str]) -> str:
        expr = parts[0] if len(parts) == 1 else " AND ".join(f"({p})" for p in parts)
        for n in negated:
            expr = f"({expr}) NOT ({n})"
        return expr

    def or_(self, parts: list[str]) -> str:
        return " OR ".join(f"({p})" for p in parts)


def _fts5_string(word: str) -> str:
    return word.replace('"', '""')


class _TsQuery(_Emitter):
    """tsquery syntax: 'lexeme', :* a prefix, :D the text's weight, ``^word`` a title
    word (see IndexedText.tsvector), <-> adjacent, & | ! and parentheses."""

    def term(self, term: Term) -> Compiled:
        def lexeme(word: str, prefix: bool) -> str:
            star = "*" if prefix else ""
            if term.scope == "title":
                return _quote(TITLE + word) + (":*" if prefix else "")
            if term.scope == "text":
                return f"{_quote(word)}:{star}D"
            return _quote(word) + (":*" if prefix else "")

        words = [lexeme(w.text, w.prefix) for w in term.words]
        if len(words) == 1:
            return Compiled(words[0], True)
        # The words in a row where the document's positions are whole; all of them
        # where a word's positions were cut short (verification decides there).
        cut = " | ".join(_quote(CUT + w.text) + (":*" if w.prefix else "")
                         for w in term.words)
        return Compiled(f"(({' <-> '.join(words)}) | ({' & '.join(words)} & ({cut})))", False)

    def and_(self, parts: list[str], negated: list[str]) -> str:
        return "(" + " & ".join([*parts, *(f"!{n}" for n in negated)]) + ")"

    def or_(self, parts: list[str]) -> str:
        return "(" + " | ".join(parts) + ")"


class _TsLookup(_TsQuery):
    """:class:`_TsQuery` without positions or weights, which the GIN index cannot check
    itself: a phrase as all of its words, ``text:`` as the word anywhere (both a
    superset, so never negated)."""

    def term(self, term: Term) -> Compiled:
        words = [(_quote(TITLE + w.text) if term.scope == "title" else _quote(w.text))
                 + (":*" if w.prefix else "") for w in term.words]
        if len(words) == 1:
            return Compiled(words[0], term.scope != "text")
        return Compiled("(" + " & ".join(words) + ")", False)
