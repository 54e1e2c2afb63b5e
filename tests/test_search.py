"""Search through the full-text index, on SQLite and PostgreSQL: the index narrows, the
query decides, so search, `rules test` and the alerts rules raise give the same answer.

The property test stores documents once per database (random words from the rule
language's property tests, written with random case, accents and punctuation, and the
real seed articles), then checks, for random queries from the grammar, that search
finds exactly the items the Matcher matches when run over every stored item.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import FIXTURES, SEEDS, Story, cli, json_lines, store_stories, write_config
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from test_rules_properties import PREFIXES, VOCAB, matches_nothing_empty, written

from monitor import db, store
from monitor.config import load_settings
from monitor.rules import And, Document, Node, Not, Or, Term, Word, parse
from monitor.rules.fulltext import IndexedText, compile_query
from monitor.search import search

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SEED_WORDS = ["russia", "venezuela", "maduro", "moscow", "kremlin", "lavrov", "peskov",
              "sovereignty", "united", "states", "telesur", "statement", "intervention",
              "zakharova", "international", "law", "caracas", "oil"]


def _config(tmp_path: Path, db_url: str, name: str = "monitor.toml", **kw: object) -> Path:
    return write_config(tmp_path / name, db_url=db_url,
                        feeds=[{"name": "Wire", "url": "http://127.0.0.1:9/wire.rss"},
                               {"name": "Desk", "url": "http://127.0.0.1:9/desk.rss"}],
                        **kw)  # type: ignore[arg-type]


# Query words: the rule language's property-test words, the seeds' and the fixture
# pages' common words, so that random queries meet real texts.
REAL_WORDS = [*VOCAB, *SEED_WORDS, "the", "said", "president", "trump", "government",
              "new", "people", "year", "police", "company"]
_words = st.one_of(st.builds(Word, st.sampled_from(REAL_WORDS)),
                   st.builds(Word, st.sampled_from([*PREFIXES, "pre", "gov", "th", "ru"]),
                             st.just(True)))


def _trees(scope: str | None) -> st.SearchStrategy[Node]:
    return st.recursive(
        st.builds(Term, st.lists(_words, min_size=1, max_size=3).map(tuple), st.just(scope)),
        lambda kids: st.one_of(
            st.builds(Not, kids),
            st.builds(And, st.lists(kids, min_size=2, max_size=3).map(tuple)),
            st.builds(Or, st.lists(kids, min_size=2, max_size=3).map(tuple))),
        max_leaves=6)


queries = st.one_of(_trees(None), st.builds(And, st.tuples(_trees("title"), _trees(None))),
                    st.builds(Or, st.tuples(_trees("text"), _trees("title"))))


def _docs() -> list[tuple[str, str]]:
    """Titles and texts: generated ones, written as publishers print; the seeds; and
    real article bodies (the fixture pages' ground truth)."""
    rnd = random.Random(7)
    out = []
    for _ in range(70):
        title = [rnd.choice(VOCAB + SEED_WORDS) for _ in range(rnd.randrange(0, 5))]
        body = [rnd.choice(VOCAB + SEED_WORDS) for _ in range(rnd.randrange(0, 30))]
        out.append((written(title, rnd), written(body, rnd)))
    for f in sorted(SEEDS.glob("*.txt")):
        lines = f.read_text(encoding="utf-8").splitlines()
        out.append((lines[0], "\n".join(lines[1:])))
    truth = json.loads((FIXTURES / "pages" / "ground-truth.json").read_text(encoding="utf-8"))
    for page in list(truth.values())[:15]:
        body = page["articleBody"]
        out.append((" ".join(body.split()[:10]), body))
    return out


@pytest.fixture
def corpus(tmp_path: Path, db_url: str) -> Iterator[tuple[Path, dict[str, int]]]:
    config = _config(tmp_path, db_url, rules=[], extra={"stories": {"enabled": False}})
    stories = [Story(f"d{i}", "Wire" if i % 2 else "Desk", title, f"https://x.test/{i}", body)
               for i, (title, body) in enumerate(_docs())]
    yield config, store_stories(config, stories, NOW)


def _search_ids(config: Path, node_or_query: Node | str, **filters: object) -> tuple[
        set[int], bool]:
    settings_ = load_settings(config)
    engine = db.make_engine(settings_.database.url)
    q = parse(node_or_query if isinstance(node_or_query, str) else str(node_or_query))
    try:
        with db.session_factory(engine)() as s:
            r = search(s, q, store.SearchFilters(**filters), limit=None,  # type: ignore[arg-type]
                       by_story=False)
            return {m.item.id for m in r.matches}, r.scanned is not None
    finally:
        engine.dispose()


def _matcher_ids(config: Path, query: str, status: str = "new") -> set[int]:
    """The reference: the query matched on every stored item, no index involved."""
    settings_ = load_settings(config)
    engine = db.make_engine(settings_.database.url)
    q = parse(query)
    try:
        with db.session_factory(engine)() as s:
            rows = s.execute(text("SELECT id, title, text, status FROM items")).all()
    finally:
        engine.dispose()
    return {i for i, title, body, st_ in rows
            if (status == "all" or st_ == status) and q.matches(Document(title, body))}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(node=queries)
def test_search_finds_exactly_what_the_matcher_matches(
        corpus: tuple[Path, dict[str, int]], node: Node) -> None:
    assume(matches_nothing_empty(node))
    config, _ = corpus
    query = str(parse(str(node)))
    found, _ = _search_ids(config, query)
    expected = _matcher_ids(config, query)
    assert found == expected
    # Where the compiled query claims to be exact, the index alone gives the answer
    # (`rules test` counts with it): no candidate for verification to drop.
    indexed, exact = _index_ids(config, query)
    assert expected <= indexed
    if exact:
        assert indexed == expected


def _index_ids(config: Path, query: str) -> tuple[set[int], bool]:
    """What the index alone finds for ``query`` (no verification), and whether its
    compiled form claims to be exact."""
    settings_ = load_settings(config)
    engine = db.make_engine(settings_.database.url)
    try:
        with db.session_factory(engine)() as s:
            compiled = compile_query(parse(query).node, store.search_dialect(s))
            assert compiled.expr is not None
            found = store.search_candidates(s, compiled.expr, store.SearchFilters(), 10_000,
                                            ranked=False)
            assert store.count_candidates(s, compiled.expr, store.SearchFilters()) \
                == len(found.ids)
            return {i for i, _ in found.ids}, compiled.exact
    finally:
        engine.dispose()


@pytest.mark.parametrize("query", [
    "russia", "Russia Venezuela", '"international law"', "kremlin OR zakharova",
    "title:russia", "text:sovereignty", "mosc*", "russia -maduro", "-maduro russia",
    "title:(russia OR venezuela) -text:oil", '"united states" -"united nations"',
])
def test_real_queries_on_the_seed_texts(corpus: tuple[Path, dict[str, int]], query: str) -> None:
    config, _ = corpus
    found, scanned = _search_ids(config, query)
    assert found == _matcher_ids(config, query)
    assert found, query  # each of these finds something in the seeds
    assert not scanned  # the index narrowed every one


def test_accents_case_prefixes_phrases_and_fields(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url, rules=[])
    ids = store_stories(config, [
        Story("accent", "Wire", "Rodríguez meets envoys", "https://x.test/a",
              "Delcy RODRÍGUEZ met the São Paulo delegation in Łódź."),
        Story("plain", "Desk", "Budget talks", "https://x.test/b",
              "Rodriguez was not there; the narco-state claims were denied."),
        Story("title", "Wire", "Narcotics seized", "https://x.test/c",
              "Customs officers found nothing else of note."),
    ], NOW)
    cases = {
        "rodriguez": {"accent", "plain"},
        "RODRÍGUEZ": {"accent", "plain"},
        "sao": {"accent"},
        "lodz": {"accent"},
        '"delcy rodriguez"': {"accent"},
        '"rodriguez delcy"': set(),
        "title:rodriguez": {"accent"},
        "text:rodriguez": {"accent", "plain"},
        "narco*": {"plain", "title"},
        "title:narco*": {"title"},
        '"narco state"': {"plain"},
        "narco-state": {"plain"},
        "rodriguez -delcy": {"plain"},
        "rodriguez NOT title:rodriguez": {"plain"},
    }
    by_id = {v: k for k, v in ids.items()}
    for query, expected in cases.items():
        found, _ = _search_ids(config, query)
        assert {by_id[i] for i in found} == expected, query


def test_the_index_follows_a_deleted_a_retexted_and_a_pruned_item(
        tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url, rules=[])
    ids = store_stories(config, [
        Story("a", "Wire", "Refinery fire", "https://x.test/a", "A refinery burned near Caracas."),
        Story("b", "Desk", "Grain deal", "https://x.test/b", "The grain deal was signed in Kyiv."),
        Story("c", "Desk", "Harbour strike", "https://x.test/c", "Dockers struck in Rotterdam."),
    ], NOW)
    settings_ = load_settings(config)
    engine = db.make_engine(settings_.database.url)
    try:
        with db.session_factory(engine).begin() as s:
            # Re-texted as `items refetch` does: the index follows the new text.
            store.record_page(s, ids["a"], store.PageFields(None, NOW, 200), store.NewText(
                "A refinery burned near Maracaibo.", "page", None, None, "en", None))
            s.execute(text("DELETE FROM items WHERE id = :i"), {"i": ids["b"]})
            store.prune_texts(s, {ids["c"]: None}, NOW)
    finally:
        engine.dispose()
    assert _search_ids(config, "caracas")[0] == set()
    assert _search_ids(config, "maracaibo")[0] == {ids["a"]}
    assert _search_ids(config, "grain OR kyiv")[0] == set()
    assert _search_ids(config, "rotterdam")[0] == set()  # its text is gone
    assert _search_ids(config, "title:harbour")[0] == {ids["c"]}  # its title stays
    # An original made a copy (and back), as refetch and fuller copies do: the status
    # filter follows (PostgreSQL's index repeats the status).
    engine = db.make_engine(settings_.database.url)
    try:
        with db.session_factory(engine).begin() as s:
            store.make_copy(s, ids["a"], store.Ref("item", ids["c"], None), "near", 0.9)
        assert _search_ids(config, "refinery")[0] == set()
        assert _search_ids(config, "refinery", status="duplicate")[0] == {ids["a"]}
        with db.session_factory(engine).begin() as s:
            store.make_original(s, ids["a"])
    finally:
        engine.dispose()
    assert _search_ids(config, "refinery")[0] == {ids["a"]}
    code, out = cli(config, "status")
    assert code == 0 and "search index: 2 of 2 stored items" in out, out


def test_filters_status_and_the_cli(tmp_path: Path, db_url: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, db_url, rules=[])
    ids = store_stories(config, [
        Story("orig", "Wire", "Pipeline blast in Kazan", "https://x.test/o",
              "A gas pipeline exploded near Kazan on Monday, officials said."),
        Story("copy", "Desk", "Pipeline blast in Kazan (copy)", "https://x.test/c",
              "A gas pipeline exploded near Kazan on Monday, officials said.", copy_of="orig"),
        Story("other", "Desk", "Kazan festival opens", "https://x.test/f",
              "The Kazan film festival opened with a pipeline of premieres."),
    ], NOW)
    assert _search_ids(config, "kazan")[0] == {ids["orig"], ids["other"]}
    assert _search_ids(config, "kazan", status="duplicate")[0] == {ids["copy"]}
    assert _search_ids(config, "kazan", status="all")[0] == set(ids.values())
    rows = json_lines(config, "search", "kazan pipeline", "--feed", "Desk", "--items")
    assert [r["item_id"] for r in rows] == [ids["other"]]
    # Ranked: the title's words weigh more than the text's.
    rows = json_lines(config, "search", "pipeline", "--items")
    assert [r["item_id"] for r in rows] == [ids["orig"], ids["other"]]
    code, out = cli(config, "search", "-festival kazan")
    assert code == 0, out
    assert "reads: NOT festival AND kazan" in out and "Pipeline blast in Kazan" in out
    assert "festival opens" not in out and "*Kazan*" in out
    code, out = cli(config, "search", "kazan", "--until", "1d")
    assert code == 0 and "0 items" in out, out
    capsys.readouterr()
    code, out = cli(config, "search", "kazan", "--feed", "Dsk")
    err = capsys.readouterr().err
    assert code == 2 and out == "" and "did you mean 'Desk'" in err, err


def test_one_line_per_story(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url, rules=[])
    kremlin = [
        Story(f"k{i}", feed, title, f"https://x.test/k{i}", body) for i, (feed, title, body) in
        enumerate([
            ("Wire", "Kremlin condemns strikes on Venezuela",
             "Kremlin spokesman Dmitry Peskov condemned the United States strikes on Venezuela "
             "and called for restraint, saying Moscow stood by Caracas and President Maduro."),
            ("Desk", "Moscow stands by Caracas after US strikes",
             "Dmitry Peskov, the Kremlin spokesman, said Moscow condemned the US strikes on "
             "Venezuela, stood by President Maduro and Caracas, and urged restraint."),
        ])]
    ids = store_stories(config, [*kremlin, Story(
        "other", "Desk", "Harbour strike in Rotterdam", "https://x.test/r",
        "Dockers went on strike in Rotterdam over pay; the Kremlin was not involved.")], NOW)
    rows = json_lines(config, "search", "kremlin")
    assert len(rows) == 2  # the two write-ups of one story are one line
    story = next(r for r in rows if r["item_id"] in (ids["k0"], ids["k1"]))
    assert story["story_matches"] == 2 and len(story["more_in_story"]) == 1
    assert len(json_lines(config, "search", "kremlin", "--items")) == 3


def test_a_query_the_index_cannot_narrow_is_scanned_and_says_so(
        tmp_path: Path, db_url: str) -> None:
    # Every query the parser admits has a positive part the index can find (a query
    # matching an empty article is refused), so the fallback is reached only when the
    # index is not there: a compiled query without an expression stands for that here.
    node = parse("maduro").node
    assert compile_query(node, "sqlite").expr == '"maduro"'
    for dialect in ("sqlite", "postgresql"):
        for q in ("-maduro", "maduro OR -guaido"):
            with pytest.raises(Exception, match="none of its words"):
                parse(q)
        inner = parse("(maduro OR -guaido) venezuela").node
        compiled = compile_query(inner, dialect)  # type: ignore[arg-type]
        assert compiled.expr is not None and not compiled.exact
    config = _config(tmp_path, db_url, rules=[])
    store_stories(config, [Story("a", "Wire", "Maduro speaks", "https://x.test/a", "Caracas.")],
                  NOW)
    import monitor.search as searching

    real = searching.compile_query
    try:
        searching.compile_query = lambda node, dialect: type(  # type: ignore[assignment]
            real(node, dialect))(None, False)
        found, scanned = _search_ids(config, "maduro")
    finally:
        searching.compile_query = real
    assert scanned and len(found) == 1


def test_tsvector_positions_stay_within_postgresql_limits() -> None:
    words = " ".join(["oil"] * 400 + ["gas"] * 17000 + ["late"])
    vec = IndexedText.of("oil oil", words + " price").tsvector()
    lexemes = {p.split(":", 1)[0]: p.split(":", 1)[1].split(",") if ":" in p else []
               for p in vec.split(" ")}
    # A word in both fields keeps positions of both weights, 16 of each at most; the
    # title's words again as ^word, unweighted.
    assert lexemes["'oil'"][:3] == ["1A", "2A", "4"] and len(lexemes["'oil'"]) == 18
    assert lexemes["'^oil'"] == ["1", "2"]
    assert lexemes["'gas'"] == [str(p) for p in range(404, 420)]
    # A word only past PostgreSQL's last position is kept, at that position.
    assert lexemes["'late'"] == ["16383"] and lexemes["'price'"] == ["16383"]
    # Words whose positions were cut short are marked (phrases cannot trust them).
    assert {w for w, spots in lexemes.items() if not spots} == {
        "'\u00b7oil'", "'\u00b7gas'", "'\u00b7late'", "'\u00b7price'"}


# --- rules test and rules backfill ------------------------------------------------------------

def test_rules_test_answers_like_search(corpus: tuple[Path, dict[str, int]]) -> None:
    config, _ = corpus
    rows = json_lines(config, "rules", "test", "russia OR kremlin", "--since", "all")
    assert {r["item_id"] for r in rows} == _matcher_ids(config, "russia OR kremlin")
    ids = [r["item_id"] for r in rows]
    assert ids == sorted(ids, reverse=True)  # newest first, as alerts arrive
    # Shown: one; counted: all (by the index, the query being exact), in a window.
    code, out = cli(config, "rules", "test", "russia OR kremlin", "--since", "30d",
                    "--limit", "1")
    assert code == 0 and f"{len(rows)} of 90 items stored since" in out, out
    assert f"... and {len(rows) - 1} more" in out, out


def _alerts(config: Path) -> list[dict[str, object]]:
    return json_lines(config, "alerts", "list")


def test_backfill_stores_each_alert_once_marked(tmp_path: Path, db_url: str) -> None:
    rules = [{"name": "Refineries", "query": "refinery", "recipients": ["desk@example.org"]}]
    config = _config(tmp_path, db_url, rules=[])
    ids = store_stories(config, [
        Story("old", "Wire", "Refinery fire", "https://x.test/o", "A refinery burned.",
              published_at="2026-12-01T10:00:00+00:00"),
        Story("copy", "Desk", "Refinery fire (copy)", "https://x.test/c",
              "A refinery burned.", copy_of="old"),
        Story("other", "Desk", "Grain deal", "https://x.test/g", "Grain was traded."),
    ], NOW - timedelta(days=2))
    config = _config(tmp_path, db_url, rules=rules)
    code, out = cli(config, "rules", "backfill", "Refineries", "--since", "7d")
    assert code == 2 and out == ""  # the rule is not stored yet: the config was not run
    store_stories(config, [], NOW)  # syncs the rules, stores nothing
    code, out = cli(config, "rules", "backfill", "Refineries", "--since", "7d", "--dry-run")
    assert code == 0 and "1 alerts would be stored" in out, out
    assert _alerts(config) == []
    code, out = cli(config, "rules", "backfill", "Refineries", "--since", "1d")
    assert code == 0 and "0 of the originals" in out, out
    code, out = cli(config, "rules", "backfill", "Refineries", "--since", "7d")
    assert code == 0 and "1 alerts stored" in out, out
    code, out = cli(config, "rules", "backfill", "Refineries", "--since", "all")
    assert code == 0 and "1 alerted before" in out and "0 alerts stored" in out, out
    alerts = _alerts(config)
    assert [(a["item_id"], a["backfilled"]) for a in alerts] == [(ids["old"], True)]
    code, out = cli(config, "digest", "preview")
    assert code == 0 and "Backfilled: stored" in out and "Refinery fire" in out, out


def test_a_rules_backfill_key_applies_once_across_workers_and_restarts(
        tmp_path: Path, db_url: str) -> None:
    """Two `monitor run --once` started together with a rule's `backfill`: the rule's
    row lock lets one of them backfill; a restart does not again; a changed window does."""
    import subprocess
    import sys

    base = _config(tmp_path, db_url, "no-rules.toml", rules=[])
    ids = store_stories(base, [
        Story(f"r{i}", "Wire", f"Refinery report {i}", f"https://x.test/r{i}",
              f"Refinery number {i} was inspected.") for i in range(5)
    ], datetime.now(UTC) - timedelta(days=2))
    rule = {"name": "Refineries", "query": "refinery", "recipients": ["desk@example.org"],
            "backfill": "7d"}
    config = _config(tmp_path, db_url, rules=[rule])

    def run_once(n: int) -> list[str]:
        """``n`` workers at once (SQLite: one after the other, one daemon per file)."""
        def start() -> subprocess.Popen[str]:
            return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config),
                                     "run", "--once"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)

        if db_url.startswith("sqlite"):
            procs = []
            for _ in range(n):
                procs.append(start())
                procs[-1].wait(timeout=120)
        else:
            procs = [start() for _ in range(n)]
        logs = [p.communicate(timeout=120)[0] for p in procs]
        assert all(p.returncode in (0, 1) for p in procs), logs  # 1: the feeds are unreachable
        return logs

    logs = run_once(2)
    assert sum("backfilled 5 alerts" in log for log in logs) == 1, logs
    alerts = _alerts(config)
    assert sorted(a["item_id"] for a in alerts) == sorted(ids.values())
    assert all(a["backfilled"] for a in alerts)
    later = store_stories(base, [Story("late", "Desk", "Refinery late", "https://x.test/late",
                                       "Another refinery was inspected.")],
                          datetime.now(UTC) - timedelta(days=1))
    logs = run_once(1)
    assert not any("backfilled" in log for log in logs), logs
    alerts = _alerts(config)
    assert len(alerts) == 5, (alerts, logs)  # applied once: the restart does not backfill again
    rule["backfill"] = "8d"
    config = _config(tmp_path, db_url, rules=[rule])
    logs = run_once(1)
    assert any("backfilled 1 alerts" in log for log in logs), logs
    assert later["late"] in {a["item_id"] for a in _alerts(config)}


# --- the index's own maintenance ---------------------------------------------------------------

def test_stored_items_are_indexed_after_the_upgrade_resumably_and_reindexed(
        tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url, rules=[])
    ids = store_stories(config, [
        Story(f"s{i}", "Wire", f"Harbour report {i}", f"https://x.test/{i}",
              f"The harbour of town {i} reopened.") for i in range(7)], NOW)
    settings_ = load_settings(config)
    engine = db.make_engine(settings_.database.url)
    try:
        sessions = db.session_factory(engine)
        with sessions.begin() as s:  # as the upgrade leaves a database with items
            assert store.mark_unindexed(s, drop=True) == 7
        with sessions.begin() as s:
            assert store.index_counts(s) == store.IndexCounts(0, 7, 7)
        with sessions.begin() as s:  # a fill stopped after its first batch...
            step = store.fill_index(s, batch=3)
        assert step.indexed == 3 and step.left > 0
        with sessions() as s:
            assert store.index_counts(s) == store.IndexCounts(3, 7, 4)
    finally:
        engine.dispose()
    code, out = cli(config, "status")
    assert code == 0 and "search index: 3 of 7 stored items; 4 still to index" in out, out
    code, out = cli(config, "db", "upgrade")  # ...resumes where it stopped
    assert code == 0 and "4 stored items indexed for search" in out, out
    assert _search_ids(config, "harbour")[0] == set(ids.values())
    code, out = cli(config, "db", "reindex-search")
    assert code == 0 and "7 items indexed; the index holds 7 of 7" in out, out
    assert _search_ids(config, "harbour")[0] == set(ids.values())


def test_compiled_queries_read_as_expected() -> None:
    def both(q: str) -> tuple[str | None, str | None]:
        node = parse(q).node
        return (compile_query(node, "sqlite").expr, compile_query(node, "postgresql").expr)

    assert both("Maduro") == ('"maduro"', "'maduro'")
    assert both('"Delcy Rodríguez"')[0] == '"delcy" + "rodriguez"'
    assert both("title:narco*") == ('title : ("narco" *)', "'^narco':*")
    assert both("text:oil -title:gas") == ('(body : ("oil")) NOT (title : ("gas"))',
                                           "('oil':D & !'^gas')")
    # A phrase: adjacent where positions are whole, else all its words.
    assert both('"Delcy Rodríguez"')[1] == (
        "(('delcy' <-> 'rodriguez') | ('delcy' & 'rodriguez' & ('\u00b7delcy' | "
        "'\u00b7rodriguez')))")
    # NOT of a phrase is left to verification on PostgreSQL (phrases are not exact there).
    assert both('oil -"natural gas"') == ('("oil") NOT ("natural" + "gas")', "('oil')")
    assert compile_query(parse('oil -"natural gas"').node, "postgresql").exact is False
    # De Morgan: NOT (NOT a AND NOT b) is a OR b.
    assert both("-(-cuba -venezuela)") == ('("cuba") OR ("venezuela")', "('cuba' | 'venezuela')")
    assert both("(cuba OR -havana) venezuela") == ('"venezuela"', "('venezuela')")


def test_a_rules_backfill_must_be_a_duration(tmp_path: Path) -> None:
    from monitor.errors import ConfigError

    config = _config(tmp_path, f"sqlite:///{tmp_path}/m.db", rules=[
        {"name": "Oil", "query": "oil", "recipients": ["a@example.org"], "backfill": "soon"}])
    with pytest.raises(ConfigError, match=r"rules\[0\].*backfill"):
        load_settings(config)


def test_an_upgraded_database_indexes_what_it_stored_before(db_url: str, tmp_path: Path) -> None:
    """Items stored at the revision before the index are searchable after `db upgrade`."""
    from sqlalchemy import MetaData, Table, insert

    from alembic import command
    from monitor.models import Feed

    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            cfg = db.alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "a28e7b761bf6")  # stories: the revision before the index
            conn.commit()
        with engine.begin() as c:
            c.execute(insert(Feed).values(id=1, url="http://x/f", name="F", enabled=True,
                                          interval_seconds=900, consecutive_failures=0,
                                          created_at=NOW))
            items = Table("items", MetaData(), autoload_with=c)
            c.execute(insert(items), [
                {"id": i, "feed_id": 1, "guid": f"g{i}", "created_at": NOW, "status": "new",
                 "text_source": "page", "title": f"Refinery {i}",
                 "text": f"Workers at the São Tomé refinery number {i} went on strike."}
                for i in (1, 2, 3)])
    finally:
        engine.dispose()
    config = _config(tmp_path, db_url, rules=[])
    code, out = cli(config, "db", "upgrade")
    assert code == 0 and "3 stored items indexed for search" in out, out
    assert _search_ids(config, "sao tome strike")[0] == {1, 2, 3}
    assert _search_ids(config, "title:refinery -title:2")[0] == {1, 3}
