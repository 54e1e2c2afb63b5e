"""The rule query language: how queries read, what they match, how they fail."""

from __future__ import annotations

import pytest

from monitor.errors import QueryError
from monitor.rules import (
    Document,
    Matcher,
    Term,
    evaluate,
    fold,
    parse,
    satisfied_terms,
    snippet,
    triggers,
    words_of,
)

# query -> its canonical form: every group explicit, words folded.
READS = [
    # implicit AND, precedence NOT > AND > OR, flattening
    ("a b", "a AND b"),
    ("a AND b AND c", "a AND b AND c"),
    ("a OR b c", "a OR (b AND c)"),
    ("a b OR c", "(a AND b) OR c"),
    ("(a OR b) c", "(a OR b) AND c"),
    ("a NOT b OR c", "(a AND NOT b) OR c"),
    ("a -b -c", "a AND NOT b AND NOT c"),
    ("a -(b OR c)", "a AND NOT (b OR c)"),
    ("a NOT NOT b", "a AND b"),
    ("((a (b c)))", "a AND b AND c"),
    ("a OR (b OR c)", "a OR b OR c"),
    ("Russia AND (Venezuela OR Cuba OR Nicaragua)", "russia AND (venezuela OR cuba OR nicaragua)"),
    # phrases and quoting
    ('"Delcy   Rodríguez"', '"delcy rodriguez"'),
    ('"Maduro"', "maduro"),
    ('"say \\"no\\" now"', '"say no now"'),
    ('"or" and\\ more', '"or" AND "and more"'),
    ("\\OR a", '"or" AND a'),
    # punctuation inside a term makes a phrase: Unicode word boundaries
    ("narco-state", '"narco state"'),
    ("U.S.", '"u s"'),
    ("Maduro's", '"maduro s"'),
    ("10:30", '"10 30"'),
    ("x\\:y", '"x y"'),
    # wildcards
    ("narco*", "narco*"),
    ('"delcy rodr*"', '"delcy rodr*"'),
    ("narco*-state", '"narco* state"'),
    ("ab\\*", "ab"),
    # fields
    ("title:Maduro text:Guaido", "title:maduro AND text:guaido"),
    ('TITLE:(a OR "b c")', 'title:a OR title:"b c"'),
    ("title:(a -b)", "title:a AND NOT title:b"),
    ("-title:a b", "NOT title:a AND b"),
    ("title:-a b", "NOT title:a AND b"),
    ("title:(text\\:x)", 'title:"text x"'),
    # folding: case, accents, compatibility forms, letters without accents
    ("RODRÍGUEZ", "rodriguez"),
    ("Łódź São Straße Øresund", "lodz AND sao AND strasse AND oresund"),
    ("ＭＡＤＵＲＯ", "maduro"),
    ("İstanbul", "istanbul"),
]


@pytest.mark.parametrize(("query", "reads"), READS)
def test_how_a_query_reads(query: str, reads: str) -> None:
    q = parse(query)
    assert str(q) == reads
    assert parse(str(q)) == q  # the canonical form reads back as the same query


# query, title, text, expected
MATCHES = [
    # whole words, never inside another word
    ("oil", "", "Oil prices fell.", True),
    ("oil", "", "Political turmoil spread.", False),
    ("oil", "", "oil-rich Venezuela", True),
    ("oil", "", "oils", False),
    ("Maduro", "", "Maduro's government", True),
    ("Maduro", "", "Maduros", False),
    ("2026", "", "in 2026.", True),
    ("2026", "", "ref 20261", False),
    # case and accents, both ways, across Latin-script languages
    ("Rodriguez", "", "Delcy Rodríguez said", True),
    ("Rodríguez", "", "DELCY RODRIGUEZ SAID", True),
    ("Rodriguez", "", "Rodri\u0301guez (decomposed accent)", True),
    ("rodríguez", "", "Rodri\u0301guez", True),
    ('"Sao Paulo"', "", "em São Paulo, ação", True),
    ("acao", "", "em São Paulo, ação", True),
    ("Elysee", "", "L'Élysée a répondu", True),
    ("strasse", "", "Friedrichstraße ist lang; die Straße", True),
    ("lodz", "", "w Łodzi i Łódź", True),
    ("Soren", "", "Søren Kierkegaard", True),
    ("istanbul", "", "İSTANBUL", True),
    ("ΟΔΟΣ", "", "στην οδος", True),  # final sigma folds like any sigma
    ("москва", "", "МОСКВА заявила", True),
    # Unicode word boundaries: hyphens split, narco-state holds narco and state
    ("narco", "", "a narco-state, they said", True),
    ("narco*", "", "a narco-state, they said", True),
    ("state", "", "a narco-state, they said", True),
    ('"narco state"', "", "a narco-state, they said", True),
    ("narco-state", "", "a narco state", True),
    ("narcostate", "", "a narco-state", False),
    ("narco*", "", "narcotráfico", True),
    ("narco*", "", "anarcho", False),
    # combining marks stay inside their word (Devanagari vowel signs)
    ("हिन्दी", "", "हिन्दी भाषा", True),
    ("हि", "", "हिन्दी भाषा", False),
    # phrases: adjacent, in order, punctuation between words ignored, one field only
    ('"Delcy Rodriguez"', "", "Delcy Rodríguez", True),
    ('"Delcy Rodriguez"', "", "Rodríguez, Delcy", False),
    ('"Delcy Rodriguez"', "", "Delcy (acting) Rodríguez", False),
    ('"Delcy Rodriguez"', "", "Delcy. Rodríguez", True),
    ('"Delcy Rodriguez"', "Delcy", "Rodríguez", False),
    ('"delcy rodr*"', "", "Delcy Rodríguez", True),
    ('"delcy rodr*"', "", "Delcy Gómez", False),
    ('"the the"', "", "the the", True),
    ('"the the"', "", "the cat the", False),
    # fields
    ("title:Maduro", "Maduro speaks", "", True),
    ("title:Maduro", "Speech", "Maduro spoke", False),
    ("text:Maduro", "Maduro speaks", "Speech", False),
    ("Maduro", "Maduro speaks", "", True),
    ("Maduro", "", "Maduro speaks", True),
    # boolean logic
    ("Maduro -Guaido", "", "Maduro and Guaidó", False),
    ("Maduro -Guaido", "", "Maduro alone", True),
    ("Russia (Cuba OR Venezuela)", "", "Russia and Cuba", True),
    ("Russia (Cuba OR Venezuela)", "", "Cuba and Venezuela", False),
    ("Russia OR Cuba Venezuela", "", "Cuba only", False),
    ("Russia OR Cuba Venezuela", "", "Russia only", True),
]


@pytest.mark.parametrize(("query", "title", "text", "expected"), MATCHES)
def test_what_a_query_matches(query: str, title: str, text: str, expected: bool) -> None:
    q = parse(query)
    doc = Document(title, text)
    assert q.matches(doc) is expected
    assert evaluate(q.node, doc) is expected  # the compiled form and the tree walk agree


# query, 1-based position, part of the message
ERRORS = [
    ("", 1, "empty"),
    ("   ", 1, "empty"),
    ("Russia AND (Venezuela OR Cuba", 12, "'(' is never closed"),
    ("a)", 2, "')' closes no '('"),
    ("(a))", 4, "')' closes no '('"),
    ("()", 1, "empty parentheses"),
    ("a OR", 3, "OR needs a term on both sides"),
    ("OR a", 1, "OR needs a term on both sides"),
    ("a AND AND b", 3, "AND needs a term"),
    ("a OR ) b", 3, "OR needs a term"),
    ("NOT", 1, "NOT needs a term"),
    ("a NOT", 3, "NOT needs a term"),
    ('say "no', 5, "quote is never closed"),
    ("foo:bar", 1, "unknown field foo:"),
    ("a url:x", 3, "unknown field url:"),
    ("title:", 1, "title: needs"),
    ("title:(a text:b)", 10, "text: inside title:"),
    ("Maduro or Guaido", 8, 'lower-case "or": write OR'),
    ("a and b", 3, 'lower-case "and"'),
    ("not a", 1, 'lower-case "not"'),
    ("a && b", 3, "write AND"),
    ("a || b", 3, "write OR"),
    ("-Guaido", 1, "none of its words"),
    ("NOT Guaido", 1, "none of its words"),
    ("Maduro OR -Guaido", 1, "none of its words"),
    ("a - b", 3, "remove the space"),
    ("a -", 3, "remove the space"),
    ("*a", 1, "must end a word"),
    ("a *", 3, "must end a word"),
    ("fo*o", 3, "can only end a word"),
    ('"delcy *"', 8, "must end a word"),
    ("a*", 1, "too short a prefix"),
    ("!!!", 1, "no letters or digits"),
    ('a ""', 3, "no letters or digits"),
    ("a\\", 2, "backslash at the end"),
]


@pytest.mark.parametrize(("query", "position", "message"), ERRORS)
def test_bad_queries_name_the_position(query: str, position: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse(query)
    err = info.value
    assert message in err.reason
    assert err.position + 1 == position
    assert f"(at position {position})" in str(err)
    line, caret = err.pointer().split("\n")
    assert line == query and caret == " " * (position - 1) + "^"


def test_fold_and_words() -> None:
    assert fold("Rodríguez") == "rodriguez"
    assert fold("ǅ") == "dz"
    assert fold("ℌ") == "h"
    assert fold("½") == "12"  # compatibility digits; the fraction slash is not a letter
    assert words_of("Venezuela's narco-state, Rodríguez!") == [
        "venezuela", "s", "narco", "state", "rodriguez"]
    assert words_of("...") == []
    assert words_of("Łódź") == words_of("LODZ") == ["lodz"]


def test_terms_and_snippet_of_a_hit() -> None:
    text = ("Caracas. " + "Filler words about the weather. " * 6
            + "Acting president Delcy Rodríguez met Russian envoys, "
            + "and Nicolás Maduro was not there. " + "More filler text here. " * 10)
    m = Matcher([
        ("leaders", parse('Maduro OR "Delcy Rodriguez" OR Guaido')),
        ("title only", parse("title:Venezuela")),
        ("no", parse("Guaido")),
    ])
    hits = m.match("Venezuela's new leader", text)
    assert [h.rule for h in hits] == ["leaders", "title only"]
    leaders, title_only = hits
    assert leaders.terms == ("Maduro", "Delcy Rodriguez")  # query order, as written
    assert "Delcy Rodríguez" in leaders.snippet  # around the first match in the text
    assert leaders.snippet.startswith("…") and leaders.snippet.endswith("…")
    assert len(leaders.snippet) <= 242
    assert not leaders.snippet[1].isspace()
    # Matched in the title only: the snippet is the start of the text.
    assert title_only.terms == ("title:Venezuela",)
    assert title_only.snippet.startswith("Caracas. Filler")


def test_snippet_edges() -> None:
    term = parse("tail").node
    assert isinstance(term, Term)
    doc = Document("", "short text with tail")
    assert snippet(doc, [term]) == "short text with tail"
    assert snippet(Document("t", ""), [term]) == ""
    long = Document("", "word " * 200 + "tail " + "end " * 100)
    cut = snippet(long, [term])
    assert cut.startswith("…word") and cut.endswith("…") and "tail" in cut


def test_satisfied_terms_leave_out_excluded_and_failed_branches() -> None:
    q = parse("(a b) OR (c -d) OR e")
    doc = Document("", "a c d e")
    assert [str(t) for t in satisfied_terms(q.node, doc)] == ["e"]
    assert satisfied_terms(q.node, Document("", "x")) == []


def test_triggers() -> None:
    def t(query: str) -> set[str] | None:
        found = triggers(parse(query).node)
        return None if found is None else set(found)

    assert t("maduro") == {"maduro"}
    assert t('"delcy rodriguez"') == {"rodriguez"}  # the longest word of a phrase
    assert t("a OR b OR cd*") is None  # a prefix can be anywhere
    assert t("a OR b") == {"a", "b"}
    assert t("abc (d OR e)") == {"abc"}  # the smaller set of an AND
    assert t("narco* state -x") == {"state"}


def test_matcher_with_no_rules_and_untriggered_rules() -> None:
    assert Matcher([]).match("t", "x") == []
    m = Matcher([("prefix", parse("narco* OR title:cart*"))])
    assert [h.rule for h in m.match("", "narcotics")] == ["prefix"]
    assert [h.rule for h in m.match("Cartel", "")] == ["prefix"]
    assert m.match("", "nothing") == []
