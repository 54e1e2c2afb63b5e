"""`monitor run` as a service, as real processes against a real HTTP server: backoff
and recovery, Retry-After, hot reload, SIGTERM mid-poll, one daemon per SQLite file,
/healthz and /metrics, JSON logs, `monitor status`."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import ROOT, Daemon, Entry, cli, json_lines, rss, write_config
from prometheus_client.parser import text_string_to_metric_families

LONG = "The talks in Caracas resumed on Tuesday with Delcy Rodríguez present. " * 8


def feed_row(config: Path, name: str) -> dict[str, object]:
    [row] = [r for r in json_lines(config, "feeds", "list", "--all") if r["name"] == name]
    return row


def when(row: dict[str, object], key: str) -> datetime:
    value = row[key]
    assert isinstance(value, str), row
    return datetime.fromisoformat(value)


def test_a_failing_feed_backs_off_then_recovers_and_is_polled_normally(
        server: LocalServer, tmp_path: Path) -> None:
    server.routes["/f.rss"] = Route(status=503)
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": "F", "url": server.url("/f.rss"), "interval": "30s"}],
                          poll={"jitter": 0, "backoff_base": "1s", "backoff_max": "4s"})
    daemon = Daemon(config, log=tmp_path / "d.log")
    try:
        assert daemon.wait_for(lambda: len(server.hits("/f.rss")) >= 5, 40), daemon.log()
        hits = server.hits("/f.rss")
        gaps = [b.at - a.at for a, b in itertools.pairwise(hits[:5])]
        # 1s, 2s, 4s, then the 4s cap; never given up
        for gap, expected in zip(gaps, [1, 2, 4, 4], strict=True):
            assert expected - 0.2 <= gap <= expected + 1.5, gaps
        row = feed_row(config, "F")
        assert row["state"] == "failing" and row["consecutive_failures"] >= 4  # type: ignore[operator]
        assert row["last_error"] == "HTTP 503" and row["next_poll_at"]
        assert "(failure 4 in a row); next attempt in 4s (backoff)" in daemon.log()

        # The server recovers: the next attempt (within the 4 s cap) succeeds, and the
        # feed is back on its 30 s interval.
        server.routes["/f.rss"] = Route(body=rss("F", [Entry("Talks", None, guid="t1",
                                                             content=LONG)]), etag='"v1"')
        assert daemon.wait_for(lambda: server.hits("/f.rss")[-1].status == 200, 10)
        recovered = server.hits("/f.rss")[-1].at
        assert daemon.wait_for(lambda: feed_row(config, "F")["state"] == "ok", 10)
        row = feed_row(config, "F")
        assert row["consecutive_failures"] == 0 and row["last_error"] is None
        assert (when(row, "next_poll_at") - when(row, "last_success_at")
                ).total_seconds() == pytest.approx(30, abs=0.01)
        # … and polled normally again: a conditional GET 30 s later, answered 304.
        assert daemon.wait_for(lambda: server.hits("/f.rss")[-1].status == 304, 40)
        last = server.hits("/f.rss")[-1]
        assert last.headers.get("if-none-match") == '"v1"'
        assert last.at - recovered == pytest.approx(30, abs=2)
        assert feed_row(config, "F")["items"] == 1
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()


def test_retry_after_seconds_and_http_date_are_honoured(server: LocalServer,
                                                         tmp_path: Path) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    server.routes["/a.rss"] = Route(status=429, headers={"Retry-After": "7200"})
    server.routes["/b.rss"] = Route(status=503,
                                    headers={"Retry-After": format_datetime(later, usegmt=True)})
    server.routes["/c.rss"] = Route(status=503, headers={"Retry-After": "5"})
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": n, "url": server.url(f"/{n.lower()}.rss")}
                                 for n in "ABC"], poll={"jitter": 0})
    assert cli(config, "run", "--once")[0] == 0
    a, b, c = (feed_row(config, n) for n in "ABC")
    assert (when(a, "next_poll_at") - when(a, "last_attempt_at")).total_seconds() == 7200
    assert abs((when(b, "next_poll_at") - later).total_seconds()) < 1
    # A Retry-After shorter than the backoff (1 minute) does not shorten it.
    assert (when(c, "next_poll_at") - when(c, "last_attempt_at")).total_seconds() == 60
    assert "HTTP 429" in str(a["last_error"]) and "Retry-After: 7200" in str(a["last_error"])


def test_config_edits_apply_without_a_restart(server: LocalServer, tmp_path: Path) -> None:
    for name in ("a", "b"):
        server.routes[f"/{name}.rss"] = Route(body=rss(name, []), etag=f'"{name}"')
    feed_a = {"name": "A", "url": server.url("/a.rss")}
    feed_b = {"name": "B", "url": server.url("/b.rss")}
    path = tmp_path / "m.toml"

    def config(feeds: list[dict[str, object]], **extra: object) -> Path:
        return write_config(path, db_url=f"sqlite:///{tmp_path}/d.db", feeds=feeds,
                            daemon={"config_check": "1s"}, **extra)  # type: ignore[arg-type]

    daemon = Daemon(config([feed_a]), log=tmp_path / "d.log")
    try:
        assert daemon.wait_for(lambda: bool(server.hits("/a.rss")), 20), daemon.log()
        # A feed added to the file is polled within one reload cycle (1 s), no restart.
        edited = time.monotonic()
        config([feed_a, feed_b])
        assert daemon.wait_for(lambda: bool(server.hits("/b.rss")), 10), daemon.log()
        assert server.hits("/b.rss")[0].at - edited < 1 + 2  # the cycle, and a margin
        assert "config reloaded" in daemon.log() and "added 'B'" in daemon.log()

        # An invalid edit is refused, named, and the running config stays.
        path.write_text(path.read_text(encoding="utf-8") + "\n[poll]\njiter = 0.2\n",
                        encoding="utf-8")
        assert daemon.wait_for_log("config not reloaded", 10)
        assert re.search(rf"{re.escape(str(path))}: .*unknown key|invalid TOML", daemon.log())

        # A disabled feed and a changed rule, picked up on SIGHUP.
        config([feed_a, {**feed_b, "enabled": False}],
               rules=[{"name": "Cuba", "query": "Cuba", "recipients": ["d@example.org"]}])
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for_log("disabled 'B'", 10), daemon.log()
        assert re.search(r"config reloaded from .*: feeds, rules changed", daemon.log())
        assert "rules: added 'Cuba'; removed 'Venezuela leadership'" in daemon.log()
        assert feed_row(path, "B")["enabled"] is False
        assert daemon.proc.poll() is None  # the same process throughout
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()
    assert daemon.log().count("stop with SIGINT") == 1  # started once: never restarted


def test_sigterm_mid_poll_exits_within_the_bound_and_loses_nothing(
        server: LocalServer, tmp_path: Path) -> None:
    entries = [Entry("Slow story", server.url("/slow"), guid="s", content=LONG),
               Entry("Quick story", server.url("/quick"), guid="q", content=LONG)]
    server.routes["/f.rss"] = Route(body=rss("F", entries))
    server.routes["/slow"] = Route(body=b"<html><body><p>slow</p></body></html>", delay=30)
    server.routes["/quick"] = Route(body=b"<html><body><p>quick</p></body></html>")
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": "F", "url": server.url("/f.rss")}],
                          daemon={"shutdown_timeout": "2s"}, fetch={"timeout": "60s"})
    daemon = Daemon(config, log=tmp_path / "d.log")
    try:
        assert daemon.wait_for(lambda: bool(server.hits("/quick")), 30), daemon.log()
        time.sleep(0.3)  # /slow is in flight (the server answers it in 30 s)
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(30)
        took = time.monotonic() - sent
    finally:
        daemon.kill()
    assert code == 0, daemon.log()
    assert took < 2 + 5, took  # the bound, and the time to start and stop the process
    assert "waiting up to 2s for 1 polls" in daemon.log()
    assert "1 polls and entries cancelled" in daemon.log()
    # The quick story was stored as soon as its page came; the poll's outcome was not
    # written, and its lease was given back …
    row = feed_row(config, "F")
    assert row["items"] == 1 and row["last_attempt_at"] is None and row["lease_owner"] is None
    # … so the next start polls it again and stores the slow story too.
    server.routes["/slow"] = Route(body=b"<html><body><p>slow</p></body></html>")
    assert cli(config, "run", "--once")[0] == 0
    titles = {i["title"] for i in json_lines(config, "items", "list")}
    assert titles == {"Slow story", "Quick story"}


def test_a_second_daemon_on_one_sqlite_file_refuses_to_start(server: LocalServer,
                                                             tmp_path: Path) -> None:
    server.routes["/a.rss"] = Route(body=rss("A", []))
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": "A", "url": server.url("/a.rss")}])
    first = Daemon(config, log=tmp_path / "first.log")
    try:
        assert first.wait_for_log("stop with SIGINT", 30), first.log()
        for extra in ([], ["--once"]):
            second = subprocess.run(
                [sys.executable, "-m", "monitor", "--config", str(config), "run", *extra],
                cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
            assert second.returncode == 3, second.stderr
            assert f"another monitor process (pid {first.pid}) is already running" in second.stderr
            assert "use PostgreSQL to run several workers" in second.stderr
    finally:
        assert first.stop() == 0
    # Once the first has stopped, a new one starts.
    assert cli(config, "run", "--once")[0] == 0


def test_healthz_and_metrics(server: LocalServer, tmp_path: Path) -> None:
    server.routes["/ok.rss"] = Route(body=rss("OK", [
        Entry("Maduro speaks", None, guid="m1", content="Maduro spoke. " + LONG),
        Entry("Weather", None, guid="w1", content="Rain in the Andes today. " * 20)]))
    server.routes["/bad.rss"] = Route(status=500)
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": "OK", "url": server.url("/ok.rss")},
                                 {"name": "Bad", "url": server.url("/bad.rss")}],
                          daemon={"listen": "127.0.0.1:0"})
    daemon = Daemon(config, log=tmp_path / "d.log")
    try:
        assert daemon.wait_for(lambda: "serving http://" in daemon.log(), 30), daemon.log()
        [base] = re.findall(r"serving (http://127\.0\.0\.1:\d+)/healthz", daemon.log())
        assert daemon.wait_for(lambda: "monitor.pipeline" in daemon.log()
                               and "items" in daemon.log() and len(server.hits()) >= 2, 30)

        def metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = resp.read().decode()
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for fam in text_string_to_metric_families(text) for s in fam.samples}

        assert daemon.wait_for(
            lambda: metrics().get(("monitor_polls_total", (("outcome", "parsed"),))) == 1.0
            and metrics().get(("monitor_backlog_feeds", ())) is not None, 20)
        m = metrics()
        assert m[("monitor_poll_failures_total", (("kind", "http_5xx"),))] == 1.0
        assert m[("monitor_items_stored_total", ())] == 2.0
        assert m[("monitor_duplicates_total", ())] == 0.0
        assert m[("monitor_alerts_total", ())] == 1.0  # Maduro, not the weather
        assert m[("monitor_digests_sent_total", ())] == 0.0
        assert m[("monitor_feeds_enabled", ())] == 2.0
        assert ("monitor_oldest_overdue_seconds", ()) in m
        assert m[("monitor_digests_pending", ())] == 0.0
        assert m[("monitor_entries_pending", (("state", "found"),))] == 0.0  # all stored
        assert m[("monitor_entries_claimed", ())] == 0.0

        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:
            health = json.loads(resp.read())
        assert resp.status == 200 and health["status"] == "ok"
        assert health["worker"].split(":")[1] == str(daemon.pid)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nothing", timeout=10)
        assert missing.value.code == 404
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_json_logs_name_the_feed_and_url(server: LocalServer, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    server.routes["/a.rss"] = Route(body=rss("A", [Entry("Story", server.url("/gone"),
                                                         guid="g", content=LONG)]))
    server.routes["/b.rss"] = Route(status=404)
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": "A", "url": server.url("/a.rss")},
                                 {"name": "B", "url": server.url("/b.rss")}],
                          logging={"format": "json"})
    capsys.readouterr()
    assert cli(config, "run", "--once")[0] == 0
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert records and all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    by_feed = {r.get("feed") for r in records}
    assert {"A", "B"} <= by_feed
    [failure] = [r for r in records if r["level"] == "WARNING" and r.get("feed") == "B"]
    assert failure["url"] == server.url("/b.rss") and "HTTP 404" in failure["message"]
    # The page fetch inside A's poll carries A too.
    [page] = [r for r in records if "/gone" in r["message"] and r["level"] == "WARNING"]
    assert page["feed"] == "A" and page["url"] == server.url("/a.rss")


def test_status_and_feeds_list_show_state_errors_and_next_attempt(
        server: LocalServer, tmp_path: Path) -> None:
    server.routes["/ok.rss"] = Route(body=rss("OK", []))
    server.routes["/bad.rss"] = Route(status=502)
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": "OK", "url": server.url("/ok.rss")},
                                 {"name": "Bad", "url": server.url("/bad.rss")},
                                 {"name": "Off", "url": server.url("/off.rss"),
                                  "enabled": False}], poll={"jitter": 0})
    assert cli(config, "run", "--once")[0] == 0
    code, out = cli(config, "feeds", "list")
    assert code == 0
    # The first backoff is 1m from the poll; the list is printed a moment later.
    assert re.search(r"Bad <.*>\n    FAILING \(1 in a row\); 0 items; every 15m \(adaptive "
                     r"15m-4h\); last success never; next attempt in (1m|5\ds) ", out), out
    assert "    last error: HTTP 502" in out
    assert "Off <" not in out and "(1 disabled feed not shown: `feeds list --all` shows it" in out
    assert re.search(r"Off <.*>\n    disabled;", cli(config, "feeds", "list", "--all")[1])

    code, out = cli(config, "status")
    assert code == 0
    assert "workers: 0 running" in out
    assert "feeds: 1 disabled, 1 failing, 1 ok" in out
    assert "failing feeds (1):" in out and "last error: HTTP 502" in out
    status = json.loads(cli(config, "status", "--json")[1])
    assert status["feeds"] == {"ok": 1, "failing": 1, "disabled": 1}
    assert status["backlog"]["enabled"] == 2 and status["backlog"]["due"] == 0
    [failing] = status["failing"]
    assert failing["name"] == "Bad" and failing["last_status"] == 502
    assert status["digests"]["pending"] == 0
