"""Alert channels end to end, against real local receivers: a webhook that checks
signatures and fails twice before it accepts, channels that never accept or refuse,
a per-minute budget and a 429 shared by processes, story batching, several `monitor`
processes delivering at once, and a worker killed with SIGKILL mid-request."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import LocalServer, Route, fresh_database
from helpers import (
    ROOT,
    Daemon,
    Entry,
    Story,
    article,
    cli,
    json_lines,
    rss,
    store_stories,
    write_config,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func as sa_func
from sqlalchemy import select, update

from monitor import db
from monitor.config import load_settings
from monitor.models import Alert, ChannelAlert, ChannelMessage, Item
from monitor.store import channels as chstore

SECRET = "hook-secret-for-tests"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each path from its script (then 200),
    records every request, and checks the HMAC signature of those that carry one."""

    def __init__(self) -> None:
        self.script: dict[str, list[Answer]] = {}
        self.always: dict[str, Answer] = {}
        self.got: list[Received] = []
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle's algorithm the second
            # waits for the client's delayed ACK, 40 ms a request on Linux.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.split("?")[0]
                with receiver._lock:
                    queue = receiver.script.get(path, [])
                    answer = queue.pop(0) if queue else receiver.always.get(path, Answer())
                    if "x-monitor-signature" in headers:
                        mac = hmac.new(SECRET.encode(), headers["x-monitor-timestamp"].encode()
                                       + b"." + body, hashlib.sha256).hexdigest()
                        if headers["x-monitor-signature"] != f"sha256={mac}":
                            receiver.bad_signatures += 1
                    receiver.got.append(Received(self.command, path, headers, body,
                                                 answer.status))
                if answer.delay:
                    receiver._stop.wait(answer.delay)
                out = b'{"ok": true}' if answer.status < 300 else b"upstream unavailable"
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_PUT = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.got if r.path == path]

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def site(server: LocalServer, n: int, first: int = 0) -> str:
    """A feed of ``n`` articles (each its own story) on ``server``; returns its URL."""
    entries = []
    for i in range(first, first + n):
        server.routes[f"/a/{i}.html"] = Route(body=article(i))
        entries.append(Entry(f"Story {i}", server.url(f"/a/{i}.html")))
    server.routes["/feed.xml"] = Route(body=rss("Desk", entries),
                                       content_type="application/rss+xml")
    return server.url("/feed.xml")


def config(tmp_path: Path, db_url: str, feed: str, channels: list[dict[str, object]],
           name: str = "monitor.toml") -> Path:
    return write_config(tmp_path / name, db_url=db_url, feeds=[{"name": "Desk", "url": feed}],
                        rules=[{"name": "Stories", "query": "story",
                                "recipients": ["desk@example.org"],
                                "notify": [str(c["name"]) for c in channels]}],
                        channels=channels)


def hook(receiver: Receiver, name: str, path: str, **extra: object) -> dict[str, object]:
    return {"name": name, "kind": "webhook", "url": receiver.url(path), "timeout": "5s",
            "retry": "1s", **extra}


def queue(cfg: Path, numbers: range) -> None:
    """Store one article per number (feed "Desk", each its own story) with the alerts the
    config's rules raise on them, as the pipeline stores them: queued, nothing sent."""
    store_stories(cfg, [Story(key=f"s{i}", feed="Desk", title=f"Story {i}",
                              url=f"https://desk.example/{i}", text=article(i).decode())
                        for i in numbers], datetime.now(UTC))


def listing(cfg: Path, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = json_lines(cfg, "channels", "list", name)
    return rows[0], [r["message"] for r in rows[1:]]


def test_a_webhook_failing_twice_gets_the_alert_once_with_one_key(
        server: LocalServer, receiver: Receiver, db_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    receiver.script["/hook"] = [Answer(500), Answer(500)]
    cfg = config(tmp_path, db_url, site(server, 1),
                 [hook(receiver, "desk", "/hook", secret_env="HOOK_SECRET",
                       headers={"X-Team": "news"})])
    code, out = cli(cfg, "run", "--once")
    assert code == 0, out
    assert "channel messages: 0 delivered, 1 to retry, 0 dead" in out
    counts, [message] = listing(cfg, "desk")
    assert (counts["pending"], counts["retrying"], message["attempts"]) == (1, 1, 1)
    assert "HTTP 500: upstream unavailable" in message["last_error"]
    for expected_attempts in (2, 3):
        time.sleep(2.1)  # retry 1s, then 2s
        code, out = cli(cfg, "channels", "send")
        assert code == 0, out
        counts, [message] = listing(cfg, "desk")
        assert message["attempts"] == expected_attempts, (message, out)
    assert (counts["delivered"], counts["pending"], counts["dead"]) == (1, 0, 0)
    assert message["state"] == "delivered" and message["last_status"] == 200
    got = receiver.requests("/hook")
    assert [r.status for r in got] == [500, 500, 200]
    assert {r.headers["idempotency-key"] for r in got} == {message["key"]}
    assert receiver.bad_signatures == 0 and all("x-monitor-signature" in r.headers for r in got)
    assert all(r.headers["x-team"] == "news" for r in got)
    body = json.loads(got[-1].body)
    [alert] = json_lines(cfg, "alerts", "list")
    assert [a["alert_ids"] for a in body["articles"]] == [[alert["id"]]]
    assert body["articles"][0]["title"] == "Story 0" and body["id"] == message["key"]
    time.sleep(1.1)
    assert cli(cfg, "channels", "send")[0] == 0
    assert len(receiver.requests("/hook")) == 3  # delivered: never sent again


def test_a_channel_that_never_accepts_dead_letters_and_blocks_nothing(
        server: LocalServer, receiver: Receiver, db_url: str, tmp_path: Path) -> None:
    receiver.always["/down"] = Answer(500)
    receiver.always["/gone"] = Answer(404)
    cfg = config(tmp_path, db_url, site(server, 2), [
        hook(receiver, "good", "/good"), hook(receiver, "down", "/down", attempts=2),
        hook(receiver, "gone", "/gone")])
    code, out = cli(cfg, "run", "--once")
    assert code == 0, out
    good, _ = listing(cfg, "good")
    gone, gone_messages = listing(cfg, "gone")
    assert (good["delivered"], good["pending"], good["dead"]) == (2, 0, 0)
    assert (gone["dead"], {m["attempts"] for m in gone_messages}) == (2, {1})  # refused: at once
    assert "HTTP 404" in gone["last_error"]
    # A channel that fails ends its round: one request a round, not one per message.
    assert len(receiver.requests("/down")) == 1
    for _ in range(8):
        if listing(cfg, "down")[0]["dead"] == 2:
            break
        time.sleep(1.1)
        assert cli(cfg, "channels", "send")[0] == 0
    down, down_messages = listing(cfg, "down")
    assert (down["dead"], down["pending"]) == (2, 0)
    assert {m["attempts"] for m in down_messages} == {2}
    assert len(receiver.requests("/down")) == 4 and len(receiver.requests("/gone")) == 2
    code, out = cli(cfg, "status")
    assert "channel down (webhook): 0 delivered" in out and "2 DEAD" in out, out
    code, out = cli(cfg, "channels", "list")
    assert "2 dead" in out and "monitor channels retry NAME" in out, out
    # Mended: the dead letters go again, with the keys they had.
    receiver.always["/gone"] = Answer(200)
    code, out = cli(cfg, "channels", "retry", "gone")
    assert code == 0 and "2 dead messages" in out, out
    assert cli(cfg, "channels", "send")[0] == 0
    gone, gone_messages = listing(cfg, "gone")
    assert (gone["delivered"], gone["dead"]) == (2, 0)
    keys = [r.headers["idempotency-key"] for r in receiver.requests("/gone")]
    assert sorted(keys[:2]) == sorted(keys[2:]) and len(set(keys)) == 2
    # A channel taken out of the config: its messages stay listed, and are not sent.
    cfg = config(tmp_path, db_url, site(server, 2), [hook(receiver, "good", "/good")])
    code, out = cli(cfg, "channels", "list", "down")
    assert code == 0 and out.startswith("down (no longer in the config: not delivered)\n  0 "
                                        "delivered"), out
    assert "good" not in out.split("messages, newest first:")[0]
    assert cli(cfg, "channels", "list", "nowhere")[0] == 2


def test_a_429_pauses_the_channel_for_every_worker(
        server: LocalServer, receiver: Receiver, tmp_path: Path) -> None:
    receiver.script["/busy"] = [Answer(429, headers={"Retry-After": "120"})]
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/m.db", site(server, 3),
                 [hook(receiver, "busy", "/busy", retry_max="10m")])
    assert cli(cfg, "run", "--once")[0] == 0
    assert len(receiver.requests("/busy")) == 1  # paused after the first: none of the others
    out = cli(cfg, "channels", "list", "busy")[1]
    assert "paused until" in out and "3 pending" in out, out
    assert cli(cfg, "channels", "send")[0] == 0
    assert len(receiver.requests("/busy")) == 1


def test_story_notifies_once_and_later_reports_come_batched(db_url: str, tmp_path: Path) -> None:
    """Store level, with the clock in hand: the first report makes a message; later ones
    wait while it is pending and for [[channels]] batch after it, then go together."""
    cfg = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[{"name": "Wire",
                       "url": "http://127.0.0.1:9/f"}],
                       rules=[{"name": "All", "query": "harbour OR council OR grain",
                               "recipients": [], "notify": ["desk"]}],
                       channels=[{"name": "desk", "kind": "slack",
                                  "url": "http://127.0.0.1:9/h", "batch": "10m"}])
    t0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    text = article(1).decode()

    def report(k: int) -> Story:
        return Story(key=f"r{k}", feed="Wire", url=f"https://wire.example/{k}",
                     title=f"Harbour council report {k}", text=f"{text} variant {k}",
                     published_at=None)

    ids = store_stories(cfg, [report(0)], t0)
    engine = db.make_engine(load_settings(cfg).database.url)
    sessions = db.session_factory(engine)
    try:
        with sessions.begin() as s:
            story = s.scalar(select(Item.story_id).where(Item.id == ids["r0"]))
            assert story is not None
            assert chstore.make_messages(s, "desk", 600, t0) == 1
        later = store_stories(cfg, [report(1), report(2)], t0 + timedelta(minutes=1))
        with sessions.begin() as s:  # the same event, whatever the clustering made of it
            s.execute(update(Item).where(Item.id.in_(list(later.values())))
                      .values(story_id=story))
            assert chstore.make_messages(s, "desk", 600, t0 + timedelta(minutes=1)) == 0
            first = s.scalars(select(ChannelMessage)).one()
            chstore.mark_delivered(s, first.id, 200, t0 + timedelta(minutes=1))
            assert chstore.make_messages(s, "desk", 600, t0 + timedelta(minutes=9)) == 0
            assert chstore.make_messages(s, "desk", 600, t0 + timedelta(minutes=10)) == 1
            follow = s.scalars(select(ChannelMessage).where(ChannelMessage.follow_up)).one()
            carried = set(s.scalars(select(Alert.item_id).join(
                ChannelAlert, ChannelAlert.alert_id == Alert.id)
                .where(ChannelAlert.message_id == follow.id)))
            assert carried == set(later.values()) and follow.alerts == 2
            assert follow.story_id == story and follow.key != first.key
            found = chstore.message(s, follow.id)
            assert found is not None and [a.item_id for a in found[1]] == sorted(later.values())
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(tmp_path: Path, pg_reason: str | None) -> Iterator[str]:
    with fresh_database("postgresql", tmp_path, pg_reason) as url:
        yield url


def _send_processes(cfg: Path, n: int) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg),
                               "channels", "send"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}) for _ in range(n)]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_processes_delivering_at_once_send_each_message_once(
        receiver: Receiver, pg_url: str, tmp_path: Path) -> None:
    """Twelve alerts queued (stored as the pipeline stores them), three processes
    delivering at once: each message is accepted once, by one of them."""
    receiver.always["/hook"] = Answer(200, delay=0.1)
    cfg = config(tmp_path, pg_url, "http://127.0.0.1:9/feed.xml",
                 [hook(receiver, "desk", "/hook", per_minute=1000)])
    queue(cfg, range(12))
    for p in _send_processes(cfg, 3):
        assert p.returncode == 0, p.stderr
    accepted = [r.headers["idempotency-key"] for r in receiver.requests("/hook")]
    assert len(accepted) == 12 and len(set(accepted)) == 12
    counts, messages = listing(cfg, "desk")
    assert counts["delivered"] == 12 and {m["attempts"] for m in messages} == {1}
    engine = db.make_engine(load_settings(cfg).database.url)
    try:
        with db.session_factory(engine)() as s:  # every alert in exactly one message
            assert s.scalar(select(sa_func.count()).select_from(ChannelAlert)
                            .where(ChannelAlert.message_id.is_not(None))) == 12
    finally:
        engine.dispose()


def test_the_per_minute_budget_holds_across_processes(
        receiver: Receiver, pg_url: str, tmp_path: Path) -> None:
    """Eight alerts queued (stored as the pipeline stores them, nothing sent yet), three
    processes delivering at once, a budget of three a minute: three go, in all."""
    receiver.always["/hook"] = Answer(200, delay=0.2)
    cfg = config(tmp_path, pg_url, "http://127.0.0.1:9/feed.xml",
                 [hook(receiver, "desk", "/hook", per_minute=3)])
    queue(cfg, range(8))
    for p in _send_processes(cfg, 3):
        assert p.returncode == 0, p.stderr
    assert len(receiver.requests("/hook")) == 3
    counts, _ = listing(cfg, "desk")
    assert (counts["delivered"], counts["pending"]) == (3, 5)


def test_a_worker_killed_mid_delivery_loses_nothing_and_resends_the_same_key(
        server: LocalServer, receiver: Receiver, pg_url: str, tmp_path: Path) -> None:
    receiver.script["/hook"] = [Answer(200, delay=60)]  # the first request hangs
    cfg = config(tmp_path, pg_url, site(server, 1),
                 [hook(receiver, "desk", "/hook", timeout="3s")])
    first = Daemon(cfg, log=tmp_path / "first.log")
    try:
        assert first.wait_for(lambda: bool(receiver.requests("/hook")), 60), first.log()
        first.proc.kill()  # SIGKILL, mid-request
        first.wait(30)
    finally:
        first.kill()
    counts, [message] = listing(cfg, "desk")
    assert message["state"] == "pending" and counts["delivered"] == 0
    second = Daemon(cfg, log=tmp_path / "second.log")
    try:
        assert second.wait_for(lambda: len(receiver.requests("/hook")) >= 2, 60), second.log()
        assert second.wait_for(lambda: listing(cfg, "desk")[0]["delivered"] == 1, 30)
    finally:
        second.stop()
    keys = [r.headers["idempotency-key"] for r in receiver.requests("/hook")]
    assert keys == [message["key"], message["key"]]
    engine = db.make_engine(load_settings(cfg).database.url)
    try:
        with db.session_factory(engine)() as s:
            assert s.scalar(select(ChannelAlert.message_id)) == message["id"]
    finally:
        engine.dispose()


def test_a_slow_channel_does_not_hold_up_the_others_in_the_daemon(
        receiver: Receiver, pg_url: str, tmp_path: Path) -> None:
    """A receiver that answers nothing for its whole timeout keeps its own channel busy;
    alerts stored meanwhile reach the other channel within the daemon's next rounds."""
    receiver.always["/slow"] = Answer(200, delay=60)
    cfg = write_config(tmp_path / "monitor.toml", db_url=pg_url,
                       feeds=[{"name": "Desk", "url": "http://127.0.0.1:9/feed.xml"}],
                       rules=[{"name": "Stories", "query": "story", "recipients": [],
                               "notify": ["slow", "good"]}],
                       channels=[hook(receiver, "slow", "/slow", timeout="30s"),
                                 hook(receiver, "good", "/good")],
                       daemon={"shutdown_timeout": "1s", "listen": "127.0.0.1:0"})

    daemon = Daemon(cfg, log=tmp_path / "daemon.log")
    try:
        assert daemon.wait_for_log("worker ", 60), daemon.log()
        queue(cfg, range(2))
        assert daemon.wait_for(lambda: len(receiver.requests("/good")) == 2
                               and len(receiver.requests("/slow")) == 1, 30), daemon.log()
        slow_began = time.monotonic()
        queue(cfg, range(2, 3))
        assert daemon.wait_for(lambda: len(receiver.requests("/good")) == 3, 20), daemon.log()
        assert time.monotonic() - slow_began < 30  # while the slow one still waits
        assert len(receiver.requests("/slow")) == 1
        [base] = re.findall(r"serving (http://127\.0\.0\.1:\d+)/healthz", daemon.log())

        def gauge(channel: str, state: str) -> float | None:
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
                text = resp.read().decode()
            return next((s.value for fam in text_string_to_metric_families(text)
                         for s in fam.samples if s.name == "monitor_channel_messages"
                         and s.labels == {"channel": channel, "state": state}), None)

        # /metrics: the slow channel's two messages pending and the third alert not yet
        # put in one (the channel is busy), the good one's all delivered.
        assert daemon.wait_for(lambda: (gauge("slow", "pending"), gauge("slow", "waiting"),
                                        gauge("good", "pending"), gauge("good", "waiting"))
                               == (2.0, 1.0, 0.0, 0.0), 25), daemon.log()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()


def test_channels_test_sends_one_signed_sample_and_says_what_came_back(
        receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    receiver.always["/gone"] = Answer(404)
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/m.db", "http://127.0.0.1:9/feed.xml",
                 [hook(receiver, "desk", "/hook", secret_env="HOOK_SECRET"),
                  hook(receiver, "gone", "/gone")])
    code, out = cli(cfg, "channels", "test", "desk")
    assert code == 0 and "desk: delivered (200) to webhook http://127.0.0.1/…" in out, out
    [sample] = receiver.requests("/hook")
    assert receiver.bad_signatures == 0 and "x-monitor-signature" in sample.headers
    assert "channel 'desk' works" in json.loads(sample.body)["articles"][0]["title"]
    code, out = cli(cfg, "channels", "test", "gone")
    assert code == 1 and "gone: not delivered: HTTP 404: upstream unavailable" in out, out
    assert cli(cfg, "channels", "test", "nope")[0] == 2
    assert cli(cfg, "db", "upgrade")[0] == 0
    code, out = cli(cfg, "rules", "list")
    assert "notifies: desk, gone" in out, out


def test_retention_prunes_old_delivered_and_dead_messages_not_their_alerts(
        db_url: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "m.toml", db_url=db_url,
                       feeds=[{"name": "Desk", "url": "http://127.0.0.1:9/feed.xml"}],
                       rules=[{"name": "Stories", "query": "story", "recipients": [],
                               "notify": ["desk"]}],
                       channels=[{"name": "desk", "kind": "slack",
                                  "url": "http://127.0.0.1:9/h"}],
                       extra={"retention": {"channel_messages": "30d"}})
    queue(cfg, range(3))
    engine = db.make_engine(load_settings(cfg).database.url)
    sessions = db.session_factory(engine)
    old = datetime.now(UTC) - timedelta(days=31)
    try:
        with sessions.begin() as s:
            assert chstore.make_messages(s, "desk", 900, old) == 3
            ids = sorted(s.scalars(select(ChannelMessage.id)))
            for message_id, state in zip(ids, ("delivered", "dead"), strict=False):
                s.execute(update(ChannelMessage).where(ChannelMessage.id == message_id)
                          .values(state=state))
        code, out = cli(cfg, "db", "prune", "--dry-run")
        assert code == 0 and "2 channel messages; nothing changed" in out, out
        code, out = cli(cfg, "db", "prune")
        assert code == 0 and "2 channel messages" in out, out
        with sessions() as s:
            assert list(s.scalars(select(ChannelMessage.id))) == [ids[2]]  # pending stays
            assert set(s.scalars(select(ChannelAlert.message_id))) == {ids[2]}
            assert s.scalar(select(sa_func.count()).select_from(Alert)) == 3
    finally:
        engine.dispose()


def test_a_channel_added_to_a_running_daemons_config_is_told_of_new_alerts(
        server: LocalServer, receiver: Receiver, tmp_path: Path) -> None:
    """Channels and notify apply live: SIGHUP, then what the daemon's next poll alerts
    goes to the new room."""
    db_url = f"sqlite:///{tmp_path}/m.db"
    server.routes["/feed.xml"] = Route(body=rss("Desk", []), content_type="application/rss+xml")

    def write(channels: list[dict[str, object]]) -> Path:
        return write_config(tmp_path / "monitor.toml", db_url=db_url,
                            feeds=[{"name": "Desk", "url": server.url("/feed.xml")}],
                            rules=[{"name": "Stories", "query": "story",
                                    "recipients": ["desk@example.org"],
                                    "notify": [str(c["name"]) for c in channels]}],
                            channels=channels)

    cfg = write([])
    daemon = Daemon(cfg, log=tmp_path / "daemon.log")
    try:
        assert daemon.wait_for_log("worker ", 60), daemon.log()
        # A channel whose secret is not in the environment is refused, as at start.
        write([hook(receiver, "room", "/room", secret_env="MONITOR_TEST_UNSET_SECRET")])
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for_log("unset environment variables: 'room' needs "
                                   "$MONITOR_TEST_UNSET_SECRET", 20), daemon.log()
        write([hook(receiver, "room", "/room")])
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for(lambda: "config reloaded" in daemon.log(), 20), daemon.log()
        reloaded = daemon.log().split("config reloaded", 1)[1].split("\n", 1)[0]
        assert "rules, channels changed" in reloaded, reloaded
        site(server, 1)  # the feed now lists an article the rule matches
        code, out = cli(cfg, "feeds", "poll", "Desk", "--wait", "30")
        assert code == 0, out
        assert daemon.wait_for(lambda: len(receiver.requests("/room")) == 1, 20), daemon.log()
    finally:
        assert daemon.stop() == 0
    assert json.loads(receiver.requests("/room")[0].body)["articles"][0]["title"] == "Story 0"
