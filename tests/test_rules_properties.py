"""Property tests of the rule language, against a reference that shares no code with it.

Documents are generated as lists of plain words, then written out with random
case, accents and punctuation between the words. The reference evaluator sees
only the plain words, so every match it predicts is what the folding,
splitting, phrase search, compilation and rule prefilter must reproduce.
"""

from __future__ import annotations

import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from monitor.errors import QueryError
from monitor.rules import (
    OPERATORS,
    And,
    Document,
    Matcher,
    Node,
    Not,
    Or,
    Term,
    Word,
    evaluate,
    fold,
    parse,
    words_of,
)

VOCAB = ["maduro", "delcy", "rodriguez", "cuba", "oil", "state", "narco", "caracas", "sao",
         "lodz", "or", "not", "2026"]
PREFIXES = ["ma", "ca", "nar", "rod", "st", "20"]
SEPARATORS = [" ", "-", ", ", "'", " — ", ". ", "\n", " (", ") ", "/"]
VARIANTS = {  # what each letter may be written as: every one folds back to the letter
    "a": "aáàâäãAÁÀÂ", "e": "eéèêëEÉ", "i": "iíïîIÍ", "o": "oóòôöøOÓØ", "u": "uúüûUÚÜ",
    "c": "cçCÇ", "n": "nñNÑ", "s": "sşšSŠ", "d": "dđDĐ", "l": "lłLŁ", "z": "zźżžZŽ",
}
SETTINGS = settings(max_examples=300, deadline=None)

words = st.sampled_from(VOCAB)
plain_docs = st.lists(words, max_size=12)


def written(plain: list[str], rnd: random.Random) -> str:
    """``plain`` as a publisher might print it: mixed case, accents, punctuation."""
    out = []
    for w in plain:
        out.append("".join(rnd.choice(VARIANTS.get(c, c)) for c in w))
        out.append(rnd.choice(SEPARATORS))
    return "".join(out)


# --- the reference ----------------------------------------------------------------------------

def ref_contains(plain: list[str], term: Term) -> bool:
    n = len(term.words)
    for i in range(len(plain) - n + 1):
        if all(p.startswith(w.text) if w.prefix else p == w.text
               for p, w in zip(plain[i:i + n], term.words, strict=True)):
            return True
    return False


def ref_eval(node: Node, title: list[str], text: list[str]) -> bool:
    if isinstance(node, Term):
        fields = {"title": [title], "text": [text], None: [title, text]}[node.scope]
        return any(ref_contains(f, node) for f in fields)
    if isinstance(node, Not):
        return not ref_eval(node.child, title, text)
    if isinstance(node, And):
        return all(ref_eval(c, title, text) for c in node.children)
    assert isinstance(node, Or)
    return any(ref_eval(c, title, text) for c in node.children)


# --- query trees ------------------------------------------------------------------------------

word_nodes = st.one_of(st.builds(Word, words), st.builds(Word, st.sampled_from(PREFIXES),
                                                        st.just(True)))


def terms(scope: str | None) -> st.SearchStrategy[Node]:
    return st.builds(Term, st.lists(word_nodes, min_size=1, max_size=3).map(tuple), st.just(scope))


def trees(scope: str | None) -> st.SearchStrategy[Node]:
    return st.recursive(
        terms(scope),
        lambda kids: st.one_of(
            st.builds(Not, kids),
            st.builds(And, st.lists(kids, min_size=2, max_size=3).map(tuple)),
            st.builds(Or, st.lists(kids, min_size=2, max_size=3).map(tuple)),
        ),
        max_leaves=6,
    )


queries = st.one_of(trees(None), st.builds(And, st.tuples(trees("title"), trees(None))),
                    st.builds(Or, st.tuples(trees("text"), trees("title"))))


def matches_nothing_empty(node: Node) -> bool:
    return not ref_eval(node, [], [])


@SETTINGS
@given(queries, st.lists(st.tuples(plain_docs, plain_docs), min_size=1, max_size=5),
       st.randoms(use_true_random=False))
def test_queries_read_back_and_match_like_the_reference(
        node: Node, docs: list[tuple[list[str], list[str]]], rnd: random.Random) -> None:
    assume(matches_nothing_empty(node))
    q = parse(str(node))
    assert parse(str(q)) == q and str(parse(str(q))) == str(q)  # canonical form is a fixpoint
    for title, text in docs:
        doc = Document(written(title, rnd), written(text, rnd))
        expected = ref_eval(node, title, text)
        assert q.matches(doc) is expected
        assert evaluate(q.node, doc) is expected


@SETTINGS
@given(st.lists(queries, min_size=1, max_size=8), plain_docs, plain_docs,
       st.randoms(use_true_random=False))
def test_the_matcher_finds_exactly_the_matching_rules(
        nodes: list[Node], title: list[str], text: list[str], rnd: random.Random) -> None:
    nodes = [n for n in nodes if matches_nothing_empty(n)]
    matcher = Matcher((f"r{i}", parse(str(n))) for i, n in enumerate(nodes))
    hits = matcher.match(written(title, rnd), written(text, rnd))
    assert [h.rule for h in hits] == [f"r{i}" for i, n in enumerate(nodes)
                                      if ref_eval(n, title, text)]
    for h in hits:
        assert h.terms  # a match always has terms that made it
        if text:
            assert h.snippet


@SETTINGS
@given(st.lists(words, min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_case_and_accents_in_the_query_do_not_matter(phrase: list[str],
                                                     rnd: random.Random) -> None:
    plain = " ".join(phrase)
    decorated = written(phrase, random.Random(rnd.random())).replace("(", " ").replace(")", " ")
    quoted = f'"{plain}"' if len(phrase) > 1 or plain.upper() in OPERATORS else plain
    assert parse(f'"{decorated}"') == parse(quoted)


QUERY_ALPHABET = st.sampled_from(
    [" ", "(", ")", '"', "*", ":", "-", "\\", "AND", "OR", "NOT", "and", "title:", "text:",
     "maduro", "é", "a", "x1", "&&", "\t"])


@SETTINGS
@given(st.one_of(st.text(max_size=40), st.lists(QUERY_ALPHABET, max_size=12).map("".join)))
def test_the_parser_accepts_or_names_a_position(query: str) -> None:
    try:
        q = parse(query)
    except QueryError as err:
        assert 0 <= err.position <= len(query)
        assert err.reason
    else:
        assert parse(str(q)) == q


@SETTINGS
@given(st.text(max_size=60))
def test_folding_is_idempotent_and_words_are_folded(text: str) -> None:
    assert fold(fold(text)) == fold(text)
    for w in words_of(text):
        assert fold(w) == w
        assert not any(c.isspace() for c in w)
