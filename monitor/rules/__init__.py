"""Alert rules: a search-engine query language, parsed and matched (pure).

    text.py    folding and splitting words; a document's searchable fields
    query.py   the query tree, the parser, evaluation
    match.py   many rules against one document: trigger words, terms, snippets
    age.py     whether a match alerts: recent enough ([alerts] max_age), not a muted backlog


A query is what users already type into search engines::

    Maduro                      a whole word: "Maduro", "MADURO", "Maduro's"; not "Maduros"
    "Delcy Rodriguez"           a phrase: these words, adjacent, in this order
    Russia Venezuela            both (juxtaposition is AND); also: Russia AND Venezuela
    Cuba OR Nicaragua           either
    -Guaido, NOT Guaido         not this
    narco*                      any word starting with "narco"
    title:Maduro                only in the title; text: only in the article text
    Russia (Cuba OR Venezuela)  parentheses group

Precedence: NOT (and ``-``) binds tightest, then AND, then OR, so
``a OR b c`` reads ``a OR (b AND c)``; :meth:`Query.__str__` prints every group
explicitly, and ``monitor rules test`` shows it.

Words. A text is split into words at every character that is not a letter,
a digit or a combining mark (Unicode's categories, in every script): spaces,
punctuation, hyphens and apostrophes. So "narco-state" holds the words narco
and state (``narco``, ``narco*`` and ``"narco state"`` all match it), and
"Venezuela's" holds venezuela and s (``Venezuela`` matches it). A query term
is split the same way: ``narco-state`` and ``U.S.`` are matched as phrases.
Words are compared *folded*: case-folded, compatibility-decomposed, accents
stripped, and a few letters that carry no accent to strip mapped to their
usual Latin spelling (ø o, ł l, đ d, æ ae, œ oe, þ th, ß ss): Rodríguez =
Rodriguez = RODRIGUEZ, São = Sao, Łódź = Lodz. Scripts written without spaces
(Chinese, Japanese, Thai) are not segmented into words.

Operators are upper case. A lower-case ``and``/``or``/``not`` is refused
rather than silently searched for: write ``OR``, or ``"or"`` for the word.
Backslash escapes one character, inside or outside quotes (``\\"``, ``\\*``,
``\\-``, ``\\(``, ``title\\:``). A query that would match an article containing
none of its words (``-Guaido`` alone, ``Maduro OR -Guaido``) is refused: it
would alert on nearly everything.

Errors are :class:`monitor.errors.QueryError` with a 0-based ``position``.
"""

from __future__ import annotations

from monitor.rules.age import too_old, why_not
from monitor.rules.match import (
    SNIPPET_CHARS,
    SNIPPET_LEAD,
    Hit,
    Matcher,
    highlight,
    hit,
    snippet,
    terms_labelled,
    triggers,
)
from monitor.rules.query import (
    FIELDS,
    MIN_PREFIX_CHARS,
    OPERATORS,
    And,
    Node,
    Not,
    Or,
    Query,
    Term,
    evaluate,
    parse,
    satisfied_terms,
)
from monitor.rules.text import (
    Document,
    Field,
    Pattern,
    Word,
    fold,
    word_pattern,
    words_of,
)

__all__ = [
    "FIELDS",
    "MIN_PREFIX_CHARS",
    "OPERATORS",
    "SNIPPET_CHARS",
    "SNIPPET_LEAD",
    "And",
    "Document",
    "Field",
    "Hit",
    "Matcher",
    "Node",
    "Not",
    "Or",
    "Pattern",
    "Query",
    "Term",
    "Word",
    "evaluate",
    "fold",
    "highlight",
    "hit",
    "parse",
    "satisfied_terms",
    "snippet",
    "terms_labelled",
    "too_old",
    "triggers",
    "why_not",
    "word_pattern",
    "words_of",
]
