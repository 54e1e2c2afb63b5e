"""The query language: the query tree, its parser, and evaluation (see the package
docstring for the language)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from monitor.errors import QueryError
from monitor.rules.text import Document, Field, Word, word_pattern, words_of

FIELDS = ("title", "text")
OPERATORS = ("AND", "OR", "NOT")
MIN_PREFIX_CHARS = 2  # "a*" would match nearly every article
# How deep a query may nest: parentheses, NOT/-, field: prefixes, and the groups of the
# parsed tree. Real queries nest a few levels; the limit keeps hostile ones ("(" * 10000)
# from exhausting Python's recursion limit here and wherever the tree is walked.
MAX_DEPTH = 100


@dataclass(frozen=True)
class Term:
    """A word or a phrase (several words in a row), in one field or in both."""

    words: tuple[Word, ...]
    scope: str | None = None  # "title" | "text" | None: either
    source: str = field(default="", compare=False)  # as written in the query
    # The words that must occur as they are (all but prefixes): a cheap first test.
    required: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "required",
                           frozenset(w.text for w in self.words if not w.prefix))

    def __str__(self) -> str:
        body = " ".join(str(w) for w in self.words)
        if len(self.words) > 1 or body.upper() in OPERATORS:  # "or" must read back as a word
            body = f'"{body}"'
        return f"{self.scope}:{body}" if self.scope else body

    def fields(self, doc: Document) -> tuple[Field, ...]:
        if self.scope == "title":
            return (doc.title,)
        if self.scope == "text":
            return (doc.text,)
        return (doc.title, doc.text)

    def label(self) -> str:
        """How an alert names this term: as the user wrote it, quotes dropped."""
        if not self.source:
            return str(self)
        written = self.source.replace('"', "")
        return f"{self.scope}:{written}" if self.scope else written


@dataclass(frozen=True)
class Not:
    child: Node

    def __str__(self) -> str:
        return f"NOT {_grouped(self.child)}"


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " AND ".join(_grouped(c) for c in self.children)


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(_grouped(c) for c in self.children)


Node = Term | Not | And | Or


def _grouped(node: Node) -> str:
    return f"({node})" if isinstance(node, And | Or) else str(node)


def evaluate(node: Node, doc: Document) -> bool:
    """Whether ``node`` matches ``doc`` (the plain tree walk; :class:`Query` compiles)."""
    if isinstance(node, Term):
        return any(f.contains(node) for f in node.fields(doc))
    if isinstance(node, Not):
        return not evaluate(node.child, doc)
    if isinstance(node, And):
        return all(evaluate(c, doc) for c in node.children)
    return any(evaluate(c, doc) for c in node.children)


def satisfied_terms(node: Node, doc: Document) -> list[Term]:
    """The terms found in ``doc`` that make ``node`` match it, in query order; empty
    when it does not match. A term under NOT counts when negation turns its presence
    into a match: NOT (NOT a AND NOT b) is a OR b."""
    return _explain(node, doc, True) if evaluate(node, doc) else []


def _explain(node: Node, doc: Document, outcome: bool) -> list[Term]:
    """The present terms that give ``node`` its ``outcome`` on ``doc``."""
    if isinstance(node, Term):
        return [node] if outcome else []  # an absent word is no reason to show
    if isinstance(node, Not):
        return _explain(node.child, doc, not outcome)
    # The children that decide: for AND true / OR false, all of them; else those that
    # already have the outcome.
    return [t for c in node.children if evaluate(c, doc) is outcome
            for t in _explain(c, doc, outcome)]


Test = Callable[[Document], bool]


def _compile(node: Node) -> Test:
    """``node`` as a closure: the same answers as :func:`evaluate`, 3.5x faster (100
    benchmark rules, benchmarks/rules_match.py items)."""
    if isinstance(node, Term):
        words = node.words
        if len(words) == 1 and not words[0].prefix:
            w = words[0].text
            if node.scope == "title":
                return lambda d: w in d.title.word_set
            if node.scope == "text":
                return lambda d: w in d.text.word_set
            return lambda d: w in d.title.word_set or w in d.text.word_set
        term = node
        if node.scope == "title":
            return lambda d: d.title.contains(term)
        if node.scope == "text":
            return lambda d: d.text.contains(term)
        return lambda d: d.title.contains(term) or d.text.contains(term)
    if isinstance(node, Not):
        inner = _compile(node.child)
        return lambda d: not inner(d)
    tests = tuple(_compile(c) for c in node.children)
    if isinstance(node, And):
        def all_of(d: Document) -> bool:
            for t in tests:  # noqa: SIM110 (no generator per call: this is the hot loop)
                if not t(d):
                    return False
            return True
        return all_of

    def any_of(d: Document) -> bool:
        for t in tests:  # noqa: SIM110
            if t(d):
                return True
        return False
    return any_of


@dataclass(frozen=True, eq=False)
class Query:
    """A parsed query. ``str()`` is its canonical form, every group in parentheses."""

    source: str
    node: Node
    test: Test = field(repr=False)

    def __str__(self) -> str:
        return str(self.node)

    def matches(self, doc: Document) -> bool:
        return self.test(doc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and other.node == self.node

    def __hash__(self) -> int:
        return hash(self.node)


# --- parsing ----------------------------------------------------------------------------------

class _Tok(NamedTuple):
    kind: str  # ( ) AND OR NOT - FIELD WORDS END
    pos: int
    end: int
    value: str = ""  # FIELD: the field name
    words: tuple[Word, ...] = ()  # WORDS: a bare term or a phrase


def parse(query: str) -> Query:
    """Parse ``query``. Returns a :class:`Query`; raises :class:`QueryError`."""
    node = _Parser(query).parse()
    if _depth(node) > MAX_DEPTH:  # the canonical form, str(), must parse again
        raise QueryError(query, 0, f"this query nests more than {MAX_DEPTH} levels deep")
    if evaluate(node, Document("", "")):
        raise QueryError(query, 0, "this query matches articles that contain none of its words "
                         "(it only excludes); add a word to look for, e.g. Maduro -Guaido")
    return Query(query, node, _compile(node))


class _Parser:
    def __init__(self, query: str) -> None:
        self.q = query
        self.toks = _lex(query)
        self.i = 0
        self.depth = 0  # unary() calls in progress: every level of nesting passes through one

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, pos: int, reason: str) -> QueryError:
        return QueryError(self.q, pos, reason)

    def parse(self) -> Node:
        if self.peek().kind == "END":
            raise self.fail(0, "the query is empty")
        node = self.or_(None)
        t = self.peek()
        if t.kind == ")":
            raise self.fail(t.pos, "this ')' closes no '('")
        return node

    def or_(self, scope: str | None) -> Node:
        parts = [self.and_(scope)]
        while self.peek().kind == "OR":
            op = self.take()
            parts.append(self.operand(op, scope, self.and_))
        return _join(Or, parts)

    def and_(self, scope: str | None) -> Node:
        parts = [self.unary(scope)]
        while True:
            t = self.peek()
            if t.kind == "AND":
                self.take()
                parts.append(self.operand(t, scope, self.unary))
            elif t.kind in ("WORDS", "(", "-", "NOT", "FIELD"):
                parts.append(self.unary(scope))
            else:
                return _join(And, parts)

    def operand(self, op: _Tok, scope: str | None,
                rule: Callable[[str | None], Node]) -> Node:
        if self.peek().kind in ("END", ")", "OR", "AND"):
            raise self.fail(op.pos, f"{self.q[op.pos:op.end]} needs a term on both sides")
        return rule(scope)

    def unary(self, scope: str | None) -> Node:
        if self.depth >= MAX_DEPTH:
            raise self.fail(self.peek().pos, f"this query nests more than {MAX_DEPTH} levels deep "
                            "(parentheses, NOT, - and field: prefixes)")
        self.depth += 1
        try:
            return self._unary(scope)
        finally:
            self.depth -= 1

    def _unary(self, scope: str | None) -> Node:
        t = self.peek()
        if t.kind in ("NOT", "-"):
            self.take()
            if self.peek().kind in ("END", ")", "OR", "AND"):
                what = "NOT" if t.kind == "NOT" else "-"
                raise self.fail(t.pos, f"{what} needs a term after it")
            child = self.unary(scope)
            return child.child if isinstance(child, Not) else Not(child)
        return self.scoped(scope)

    def scoped(self, scope: str | None) -> Node:
        t = self.peek()
        if t.kind == "FIELD":
            self.take()
            if scope is not None and scope != t.value:
                raise self.fail(t.pos, f"{t.value}: inside {scope}:(...) can never match")
            if self.peek().kind in ("END", ")", "OR", "AND"):
                raise self.fail(t.pos, f"{t.value}: needs a word, a phrase or a (group) after it")
            return self.unary(t.value)
        return self.primary(scope)

    def primary(self, scope: str | None) -> Node:
        t = self.take()
        if t.kind == "WORDS":
            return Term(t.words, scope, self.q[t.pos:t.end])
        if t.kind == "(":
            if self.peek().kind == ")":
                raise self.fail(t.pos, "empty parentheses")
            node = self.or_(scope)
            if self.take().kind != ")":
                raise self.fail(t.pos, "this '(' is never closed")
            return node
        if t.kind == ")":
            raise self.fail(t.pos, "this ')' closes no '('")
        if t.kind in ("AND", "OR"):
            raise self.fail(t.pos, f"{t.kind} needs a term on both sides")
        raise self.fail(t.pos, "the query ends where a word, a phrase or a (group) should be")


def _depth(node: Node) -> int:
    """The most ``unary`` levels :meth:`Query.__str__` of ``node`` can take to parse: one
    per node on a path (a non-root group is printed in parentheses), one more for a field."""
    if isinstance(node, Term):
        return 2 if node.scope else 1
    if isinstance(node, Not):
        return 1 + _depth(node.child)
    return 1 + max(_depth(c) for c in node.children)


def _join(kind: type[And] | type[Or], parts: list[Node]) -> Node:
    flat: list[Node] = []
    for p in parts:
        flat.extend(p.children if isinstance(p, kind) else (p,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


_OP_HINTS = {"&&": "AND", "&": "AND", "||": "OR", "|": "OR", "!": "NOT or -"}


def _lex(q: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c, i, i + 1))
            i += 1
        elif c == '"':
            i = _lex_phrase(q, i, toks)
        elif c == "-" and (i + 1 == n or q[i + 1].isspace() or q[i + 1] == ")"):
            raise QueryError(q, i, "a - excludes the word right after it: remove the space "
                             "(-Guaido)")
        elif c == "-":
            toks.append(_Tok("-", i, i + 1))
            i += 1
        else:
            i = _lex_bare(q, i, toks)
    toks.append(_Tok("END", n, n))
    return toks


def _lex_phrase(q: str, start: int, toks: list[_Tok]) -> int:
    chars: list[tuple[str, int, bool]] = []  # character, its position, escaped
    i = start + 1
    while i < len(q) and q[i] != '"':
        if q[i] == "\\" and i + 1 < len(q):
            chars.append((q[i + 1], i + 1, True))
            i += 2
        else:
            chars.append((q[i], i, False))
            i += 1
    if i >= len(q):
        raise QueryError(q, start, 'this quote is never closed')
    words = _words(q, chars, start)
    toks.append(_Tok("WORDS", start, i + 1, words=words))
    return i + 1


def _lex_bare(q: str, start: int, toks: list[_Tok]) -> int:
    chars: list[tuple[str, int, bool]] = []
    i = start
    while i < len(q) and not q[i].isspace() and q[i] not in '()"':
        c = q[i]
        if c == "\\":
            if i + 1 >= len(q):
                raise QueryError(q, i, "a backslash at the end escapes nothing")
            chars.append((q[i + 1], i + 1, True))
            i += 2
            continue
        if c == ":" and chars and all(not e and ch.isalpha() for ch, _, e in chars):
            name = "".join(ch for ch, _, _ in chars)
            if name.lower() not in FIELDS:
                raise QueryError(
                    q, start, f"unknown field {name}: (fields are title: and text:); to search "
                    f"for the words, write {name}\\: or put them in quotes")
            toks.append(_Tok("FIELD", start, i + 1, value=name.lower()))
            return i + 1
        chars.append((c, i, False))
        i += 1
    text = "".join(ch for ch, _, e in chars)
    if not any(e for _, _, e in chars):
        if text in OPERATORS:
            toks.append(_Tok(text, start, i))
            return i
        if text in ("and", "or", "not"):
            raise QueryError(
                q, start, f'lower-case "{text}": write {text.upper()} for the operator, '
                f'or "{text}" in quotes to search for the word')
        if text in _OP_HINTS:
            raise QueryError(q, start, f"{text} is not an operator here; write {_OP_HINTS[text]}")
    toks.append(_Tok("WORDS", start, i, words=_words(q, chars, start)))
    return i


def _words(q: str, chars: list[tuple[str, int, bool]], start: int) -> tuple[Word, ...]:
    """The words of a term or phrase, with unescaped trailing ``*`` made prefixes.

    Raises QueryError for a ``*`` that does not end a word, a prefix too short to
    mean anything, and a term with no letters or digits at all.
    """
    text = "".join(ch for ch, _, _ in chars)
    pattern = word_pattern()
    for k, (ch, pos, escaped) in enumerate(chars):
        if ch == "*" and not escaped:
            if k == 0 or not pattern.fullmatch(chars[k - 1][0]):
                raise QueryError(q, pos, "a * must end a word (narco*); it cannot start one "
                                 "or stand alone (write \\* for a literal star)")
            if k + 1 < len(chars) and pattern.fullmatch(chars[k + 1][0]):
                raise QueryError(q, pos, "a * can only end a word (narco*), not stand inside one")
    words: list[Word] = []
    for m in pattern.finditer(text):
        folded = words_of(m.group())
        if not folded or not folded[0]:
            continue
        end = m.end()
        prefix = end < len(chars) and chars[end][0] == "*" and not chars[end][2]
        if prefix and len(folded[0]) < MIN_PREFIX_CHARS:
            raise QueryError(q, chars[m.start()][1],
                             f"{m.group()}* is too short a prefix: give at least "
                             f"{MIN_PREFIX_CHARS} letters")
        words.append(Word(folded[0], prefix))
    if not words:
        shown = q[start:chars[-1][1] + 1] if chars else '""'
        raise QueryError(q, start, f"{shown} has no letters or digits to search for")
    return tuple(words)
