"""Rules on the seed corpus: five real articles on Russia's reactions to events in Venezuela.

What each query should match was read off the texts (grep), not off the matcher:
000 (Moscow Times), 002 and 004 write "Delcy Rodríguez" or "Delcy Rodriguez",
003 writes "Delcy Rodriguez"; only 001, the 2019 RFE/RL article, names Guaidó.
"""

from __future__ import annotations

import pytest
from helpers import SEEDS

from monitor.dedup.seeds import read_seeds
from monitor.rules import Document, Matcher, parse

DOCS = {d.name[:3]: Document(d.title, d.text) for d in read_seeds(SEEDS)}

CASES = [
    ('"Delcy Rodriguez"', {"000", "002", "003", "004"}),  # with and without the accent
    ('"Delcy Rodríguez"', {"000", "002", "003", "004"}),
    ("RODRIGUEZ", {"000", "002", "003", "004"}),
    ("Guaido", {"001"}),  # "Guaido", "Guaido's" and "Guaido’s" all count
    ("Guaidó", {"001"}),
    ("Maduro", {"000", "001", "003", "004"}),
    ("Maduro -Guaido", {"000", "003", "004"}),
    ("title:Maduro", {"000", "004"}),  # 002 and 003 have no title line
    ("narco*", {"000", "004"}),  # narco-trafficking, narco-state, narco-terrorism
    ("narco", {"000", "004"}),  # the hyphen is a word boundary
    ('"narco state"', {"004"}),
    ("narcostate", set()),
    ('"Cilia Flores"', {"003", "004"}),
    ("text:usurp*", {"001"}),
    ('"From teleSUR"', {"003"}),  # the RSS footer is text like any other
    ("Guaido AND (Rodriguez OR Flores)", set()),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_seed_matches(query: str, expected: set[str]) -> None:
    q = parse(query)
    assert {name for name, doc in DOCS.items() if q.matches(doc)} == expected


def test_hits_on_the_seeds_carry_terms_and_a_snippet() -> None:
    m = Matcher([("leaders", parse('Maduro OR "Delcy Rodriguez"')), ("2019", parse("Guaido"))])
    doc = DOCS["003"]
    (hit,) = m.match(doc.title.source, doc.text.source)
    assert hit.rule == "leaders"
    assert hit.terms == ("Maduro", "Delcy Rodriguez")
    assert "Maduro" in hit.snippet  # the first match in the text is "Nicolas Maduro"
    (old,) = m.match(DOCS["001"].title.source, DOCS["001"].text.source)[1:]
    assert old.rule == "2019" and "Guaido" in old.snippet
