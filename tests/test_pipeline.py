"""End to end: config -> local HTTP server -> `monitor run --once` -> database -> CLI output.

Runs on SQLite and on the local PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import py3langid
from conftest import LocalServer, Route
from helpers import Entry, atom, cli, json_lines, page_html, pages, rss, write_config
from sqlalchemy import create_engine, event, update
from sqlalchemy.engine import Engine

from benchmarks.extract_quality import scores

SEED_URL = ("https://www.themoscowtimes.com/2026/01/06/"
            "russia-backs-venezuelas-interim-leader-after-us-ousts-maduro-a91620")
SEED_NAME = "000_eb13740ee894f634.txt"


def items(config: Path, *extra: str) -> list[dict[str, Any]]:
    return json_lines(config, "items", "list", *extra)


def feeds(config: Path) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in json_lines(config, "feeds", "list")}


def serve_twenty_pages(server: LocalServer) -> dict[str, str]:
    """Two feeds (RSS 2.0 and Atom) linking to 20 real pages, plus one entry that links to
    a seed's source URL with tracking parameters. Returns page URL -> ground-truth body."""
    truth: dict[str, str] = {}
    rss_entries, atom_entries = [], []
    for i, page in enumerate(pages()):
        path = f"/articles/{page.key[:16]}.html"
        # Half the pages come gzip-encoded, as many servers send them.
        server.routes[path] = Route(body=page_html(page), gzip=i % 2 == 0)
        url = server.url(path) + "?utm_source=rss&utm_medium=feed"
        truth[server.url(path)] = page.body
        entry = Entry(title=f"Story {i}", link=url, guid=f"story-{i}",
                      summary=page.body[:150])
        (rss_entries if i < 10 else atom_entries).append(entry)
    atom_entries.append(Entry(
        title="Russia Backs Venezuela's Interim Leader After U.S. Ousts Maduro",
        link=SEED_URL + "?utm_source=telegram&utm_campaign=share&fbclid=IwAR0x",
        guid="mt-a91620",
        summary="Russia has voiced support for Venezuela's interim leader Delcy Rodríguez.",
    ))
    server.routes["/wire.rss"] = Route(body=rss("Wire", rss_entries), etag='"wire-v1"',
                                       content_type="application/rss+xml")
    server.routes["/desk.atom"] = Route(body=atom("Desk", atom_entries),
                                        last_modified="Tue, 06 Jan 2026 10:00:00 GMT",
                                        content_type="application/atom+xml")
    return truth


def test_twenty_real_pages_end_to_end(server: LocalServer, db_url: str, tmp_path: Path) -> None:
    truth = serve_twenty_pages(server)
    config = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=[
        {"name": "Wire", "url": server.url("/wire.rss"), "interval": "15m"},
        {"name": "Desk", "url": server.url("/desk.atom")},
    ])

    code, out = cli(config, "run", "--once")
    assert code == 0, out
    assert "2 parsed" in out

    stored = items(config, "--text")
    assert len(stored) == 21
    new = [i for i in stored if i["status"] == "new"]
    assert len(new) == 20
    assert {i["canonical_url"] for i in new} == set(truth)  # tracking parameters gone
    assert all(i["text_source"] == "page" for i in new)
    # The sample holds English, Korean, Portuguese, Italian and Indonesian pages; the
    # language of each ground-truth body (classified on its own) is the oracle.
    for i in new:
        assert i["language"] == py3langid.classify(truth[i["canonical_url"]])[0], i["url"]
    assert {i["language"] for i in new} == {"en", "ko", "pt", "it", "id"}
    assert {i["feed"] for i in new} == {"Wire", "Desk"}
    recalls = [scores(truth[i["canonical_url"]], i["text"])[1] for i in new]
    print(f"\nmean token recall over {len(recalls)} pages: {mean(recalls):.4f} "
          f"(min {min(recalls):.4f})")
    assert mean(recalls) >= 0.95
    assert min(recalls) >= 0.8

    # The entry pointing at a seed's source URL is that seed's duplicate, and its page
    # (on the internet, unreachable from here) was never requested.
    (dup,) = [i for i in stored if i["status"] == "duplicate"]
    assert dup["duplicate_of"] == {"kind": "seed", "id": dup["duplicate_of"]["id"],
                                   "url": SEED_URL, "seed": SEED_NAME}
    assert dup["dedup_method"] == "url"
    assert dup["canonical_url"] == SEED_URL
    assert dup["fetched_at"] is None and dup["page_error"] is None
    assert dup["text_source"] == "feed_summary"

    page_hits = server.hits("/articles/")
    assert len(page_hits) == 20
    assert all(h.headers.get("user-agent", "").startswith("monitor/") for h in page_hits)
    assert all("gzip" in h.headers.get("accept-encoding", "") for h in page_hits)

    state = feeds(config)
    assert state["Wire"]["last_status"] == 200 and state["Wire"]["consecutive_failures"] == 0
    assert state["Desk"]["last_success_at"] is not None

    # Second poll: both feeds answer 304, so nothing is parsed and no page is fetched.
    server.clear_log()
    code, out = cli(config, "run", "--once")
    assert code == 0
    assert "0 parsed, 2 not modified" in out
    hits = server.hits()
    assert [h.status for h in hits] == [304, 304]
    assert {h.path for h in hits} == {"/wire.rss", "/desk.atom"}
    wire = next(h for h in hits if h.path == "/wire.rss")
    desk = next(h for h in hits if h.path == "/desk.atom")
    assert wire.headers["if-none-match"] == '"wire-v1"'
    assert desk.headers["if-modified-since"] == "Tue, 06 Jan 2026 10:00:00 GMT"
    assert len(items(config)) == 21
    assert feeds(config)["Wire"]["last_status"] == 304


def test_unchanged_body_is_not_parsed_again(server: LocalServer, db_url: str,
                                            tmp_path: Path) -> None:
    # No validators at all: only the body hash tells the feed has not changed.
    server.routes["/plain.rss"] = Route(body=rss("Plain", [
        Entry("Only entry", None, guid="only", content="Body text of the only entry. " * 20)]))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Plain", "url": server.url("/plain.rss")}])
    assert "1 parsed" in cli(config, "run", "--once")[1]
    code, out = cli(config, "run", "--once")
    assert code == 0
    assert "0 parsed, 0 not modified, 1 unchanged" in out
    (item,) = items(config)
    assert item["text_source"] == "feed_content" and item["url"] is None


def test_broken_feeds_are_recorded_and_do_not_stop_others(
    server: LocalServer, db_url: str, tmp_path: Path
) -> None:
    server.routes["/ok.rss"] = Route(content_type="application/rss+xml", body=rss("OK", [
        Entry("Fine", None, guid="fine", content="A perfectly fine entry body. " * 20)]))
    server.routes["/down.rss"] = Route(status=503, headers={"Retry-After": "120"})
    server.routes["/limited.rss"] = Route(status=429, headers={"Retry-After": "30"})
    server.routes["/html.rss"] = Route(body=b"<html><body><p>Not a feed</p></body></html>")
    server.routes["/huge.rss"] = Route(body=b"<rss>" + b" " * 40_000 + b"</rss>")
    server.routes["/slow.rss"] = Route(body=rss("Slow", []), delay=4)
    server.routes["/gone.rss"] = Route(status=404)
    names = ["ok", "down", "limited", "html", "huge", "slow", "gone"]
    config = write_config(
        tmp_path / "m.toml", db_url=db_url,
        feeds=[{"name": n, "url": server.url(f"/{n}.rss")} for n in names],
        fetch={"timeout": "2s", "max_feed_bytes": 20_000},
    )
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    assert "1 parsed" in out and "6 failed" in out
    state = feeds(config)
    assert state["ok"]["last_error"] is None and state["ok"]["consecutive_failures"] == 0
    assert state["down"]["last_status"] == 503
    assert "HTTP 503" in state["down"]["last_error"]
    assert state["limited"]["last_status"] == 429
    assert "Retry-After: 30" in state["limited"]["last_error"]
    assert "not a usable feed" not in state["html"]["last_error"]  # the reason, not the wrapper
    assert state["html"]["last_status"] == 200
    assert "cap" in state["huge"]["last_error"]
    assert "within 2s" in state["slow"]["last_error"]
    assert state["gone"]["last_status"] == 404
    for n in names[1:]:
        assert state[n]["consecutive_failures"] == 1, n
        assert state[n]["last_success_at"] is None
    assert [i["title"] for i in items(config)] == ["Fine"]

    # Failures count up; a recovered feed resets to zero, and nothing stored is lost.
    server.routes["/down.rss"] = Route(body=rss("Back", [
        Entry("Back again", None, guid="back", content="The feed is back with news. " * 20)]))
    cli(config, "run", "--once")
    state = feeds(config)
    assert state["down"]["consecutive_failures"] == 0 and state["down"]["last_error"] is None
    assert state["gone"]["consecutive_failures"] == 2
    assert sorted(i["title"] for i in items(config)) == ["Back again", "Fine"]


def test_permanent_redirect_is_followed_and_remembered(
    server: LocalServer, db_url: str, tmp_path: Path
) -> None:
    server.routes["/old.rss"] = Route(status=301, headers={"Location": "/new.rss"})
    server.routes["/new.rss"] = Route(body=rss("Moved", [
        Entry("Moved entry", None, guid="m1", content="Entry text from the moved feed. " * 20)]),
        etag='"v1"')
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Moved", "url": server.url("/old.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    state = feeds(config)["Moved"]
    assert state["fetch_url"] == server.url("/new.rss")
    assert state["url"] == server.url("/old.rss")  # the config's URL stays the identity
    server.clear_log()
    cli(config, "run", "--once")
    assert [(h.path, h.status) for h in server.hits()] == [("/new.rss", 304)]


def test_a_move_is_recorded_only_for_a_feed_and_asked_again(
    server: LocalServer, db_url: str, tmp_path: Path
) -> None:
    def feed(title: str) -> Route:
        return Route(content_type="application/rss+xml", body=rss(title, [
            Entry(title, None, guid=title, content=f"Entry text of {title}. " * 20)]))

    # A 301 to something that is no feed fails the poll and moves nothing.
    server.routes["/old.rss"] = Route(status=301, headers={"Location": "/home.html"})
    server.routes["/home.html"] = Route(body=b"<!doctype html><html><body>Home</body></html>")
    config = write_config(tmp_path / "m.toml", db_url=db_url, poll={"backoff_base": "1s"},
                          feeds=[{"name": "F", "url": server.url("/old.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    state = feeds(config)["F"]
    assert state["consecutive_failures"] == 1 and state["fetch_url"] is None, state

    # A 301 to a feed moves it, and the next poll goes there directly.
    server.routes["/old.rss"] = Route(status=301, headers={"Location": "/new.rss"})
    server.routes["/new.rss"] = feed("first")
    assert cli(config, "run", "--once")[0] == 0
    assert feeds(config)["F"]["fetch_url"] == server.url("/new.rss")
    server.clear_log()
    assert cli(config, "run", "--once")[0] == 0
    assert [h.path for h in server.hits()] == ["/new.rss"]

    # When the new place fails, the configured URL is asked next; it no longer
    # redirects, so the move is undone.
    server.routes["/new.rss"] = Route(status=500)
    server.routes["/old.rss"] = feed("second")
    assert cli(config, "run", "--once")[0] == 0
    server.clear_log()
    assert cli(config, "run", "--once")[0] == 0
    assert [h.path for h in server.hits()] == ["/old.rss"]
    state = feeds(config)["F"]
    assert state["fetch_url"] is None and state["consecutive_failures"] == 0, state

    # A move unconfirmed for a day is confirmed at the configured URL, which may now
    # lead elsewhere.
    server.routes["/old.rss"] = Route(status=308, headers={"Location": "/new.rss"})
    server.routes["/new.rss"] = feed("third")
    assert cli(config, "run", "--once")[0] == 0
    from monitor.models import Feed
    engine = create_engine(db_url)
    try:
        with engine.begin() as c:
            c.execute(update(Feed).values(
                fetch_url_checked_at=datetime.now(UTC) - timedelta(days=1, minutes=1)))
    finally:
        engine.dispose()
    server.routes["/old.rss"] = Route(status=301, headers={"Location": "/newer.rss"})
    server.routes["/newer.rss"] = feed("fourth")
    server.clear_log()
    assert cli(config, "run", "--once")[0] == 0
    assert [h.path for h in server.hits()] == ["/old.rss", "/newer.rss"]
    assert feeds(config)["F"]["fetch_url"] == server.url("/newer.rss")
    assert sorted(i["guid"] for i in items(config)) == ["first", "fourth", "second", "third"]


def test_exact_duplicates_across_feeds(server: LocalServer, db_url: str, tmp_path: Path) -> None:
    story = ("MOSCOW (Wire) — Russia's Foreign Ministry on Tuesday called for de-escalation "
             "around Venezuela and urged dialogue under the UN Charter. ") * 5
    page = (f"<html><head><title>Wire story</title></head><body><article><h1>Wire story</h1>"
            f"<p>{story}</p><p>{story}</p></article></body></html>").encode()
    brief = "Brief: the Kremlin says Caracas must remain a zone of peace, its envoy said. " * 4
    server.routes["/a/story.html"] = Route(body=page)
    server.routes["/one.rss"] = Route(content_type="application/rss+xml", body=rss("One", [
        Entry("Wire story", server.url("/a/story.html?utm_source=one"), guid="one-1"),
        Entry("Brief", None, guid="one-2", content=brief),
    ]))
    server.routes["/two.rss"] = Route(content_type="application/rss+xml", body=rss("Two", [
        Entry("Wire story (copy)", server.url("/a/story.html?fbclid=xyz"), guid="two-1"),
        # Same words; other case, accents and punctuation: an exact duplicate by text.
        Entry("BRIEF!", None, guid="two-2", content=brief.upper().replace(",", " ;")),
    ]))
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[
        {"name": "One", "url": server.url("/one.rss")},
        {"name": "Two", "url": server.url("/two.rss")},
    ])
    assert cli(config, "run", "--once")[0] == 0
    by_guid = {i["guid"]: i for i in items(config)}
    assert len(by_guid) == 4
    for pair, method in ((("one-1", "two-1"), "url"), (("one-2", "two-2"), "exact")):
        a, b = (by_guid[g] for g in pair)
        orig, dup = (a, b) if a["status"] == "new" else (b, a)
        assert orig["status"] == "new" and dup["status"] == "duplicate", pair
        assert dup["duplicate_of"]["kind"] == "item"
        assert dup["duplicate_of"]["id"] == orig["id"]
        assert dup["dedup_method"] == method
        assert dup["similarity"] == (1.0 if method == "exact" else None)
        assert orig["similarity"] is None
    # Both feeds were polled together, yet the shared article page was fetched once.
    assert len(server.hits("/a/story.html")) == 1


def test_failed_page_falls_back_to_the_entry(server: LocalServer, db_url: str,
                                             tmp_path: Path) -> None:
    summary = "Summary of an article whose page is gone. " * 8
    server.routes["/f.rss"] = Route(body=rss("F", [
        Entry("Gone page", server.url("/missing.html"), guid="g1", summary=summary)]))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": server.url("/f.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    (item,) = items(config, "--text")
    assert item["text_source"] == "feed_summary"
    assert item["text"].startswith("Summary of an article")
    assert item["page_error"] == "HTTP 404"
    assert item["page_status"] == 404 and item["fetched_at"] is None
    assert item["status"] == "new"
    assert item["language"] == "en"  # from the feed's <language>


def test_malformed_but_usable_feed_is_ingested(server: LocalServer, db_url: str,
                                               tmp_path: Path) -> None:
    body = rss("Bozo", [Entry("Fish & Chips", None, guid="b1",
                              content="An entry in a feed with a bare ampersand. " * 10)])
    server.routes["/bozo.rss"] = Route(body=body.replace(b"Fish &amp; Chips", b"Fish & Chips"))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "Bozo", "url": server.url("/bozo.rss")}])
    assert cli(config, "run", "--once")[0] == 0
    assert feeds(config)["Bozo"]["parse_warning"]
    assert len(items(config)) == 1


def test_pages_are_fetched_only_a_few_ahead_of_extraction(server: LocalServer, tmp_path: Path) -> None:
    # 24 slow pages, every fetch limit wide open: only the pipeline's own bound (pages
    # waiting for the one extraction worker) keeps them from all being fetched at once,
    # and held in memory, while the worker is busy.
    entries = []
    for i in range(24):
        server.routes[f"/p/{i}"] = Route(body=page_html_text(i), delay=0.3)
        entries.append(Entry(title=f"Story {i}", link=server.url(f"/p/{i}"), guid=f"s{i}"))
    server.routes["/feed.rss"] = Route(body=rss("Wide", entries), content_type="application/rss+xml")
    config = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                          feeds=[{"name": "Wide", "url": server.url("/feed.rss")}],
                          fetch={"concurrency": 32, "per_host": 32}, extract={"workers": 1})
    code, out = cli(config, "run", "--once")
    assert code == 0, out
    assert len(items(config)) == 24
    assert 2 <= server.max_in_flight <= 6, server.max_in_flight  # PAGES_AHEAD_PER_WORKER x 1


def page_html_text(i: int) -> bytes:
    paragraphs = "".join(f"<p>Paragraph {k} of story {i}, with enough words to be kept as "
                         "the article's text by the extractor.</p>" for k in range(12))
    return (f"<html lang=en><head><title>Story {i}</title></head><body><article>"
            f"<h1>Story {i}</h1>{paragraphs}</article></body></html>").encode()


def test_a_polls_writes_run_in_the_store_thread(server: LocalServer, db_url: str,
                                                tmp_path: Path) -> None:
    # Each outcome (stored entries, a failure, a permanent move) is written by the store
    # thread: written on the event loop instead, it would wait there for the database
    # (SQLite's lock held by another feed's transaction) and stall every fetch meanwhile.
    server.routes["/ok.rss"] = Route(content_type="application/rss+xml", body=rss("OK", [
        Entry("Fine", None, guid="fine", content="A perfectly fine entry body. " * 20)]))
    server.routes["/down.rss"] = Route(status=503)
    server.routes["/old.rss"] = Route(status=301, headers={"Location": "/ok2.rss"})
    server.routes["/ok2.rss"] = Route(content_type="application/rss+xml", body=rss("OK2", [
        Entry("Moved", None, guid="moved", content="An entry of the moved feed. " * 20)]))
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[
        {"name": n, "url": server.url(f"/{n}.rss")} for n in ("ok", "down", "old")])
    writes: list[tuple[str, str]] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sql = " ".join(statement.split()).lower()
        set_clause = sql.split(" where ", 1)[0]  # not the claim: its subquery reads the feed
        if sql.startswith("insert into items (") or (sql.startswith("update feeds set") and (
                "consecutive_failures" in set_clause or "fetch_url" in set_clause)):
            writes.append((threading.current_thread().name, " ".join(sql.split()[:3])))

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        code, out = cli(config, "run", "--once")
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert code == 0, out
    assert feeds(config)["down"]["consecutive_failures"] == 1
    assert feeds(config)["old"]["fetch_url"] == server.url("/ok2.rss")
    # Two entries stored; two successes (one with the move) and a failure recorded.
    assert sorted(w for _, w in writes) == ["insert into items"] * 2 + ["update feeds set"] * 3
    assert all(thread.startswith("store") for thread, _ in writes), writes
