"""/healthz tells a busy worker from a stuck one: every poll slot taken by slow servers is
busy (the database answers the heartbeat, and no step has run past its own timeout);
nothing moving for longer than any step may take, or a silent database, is not."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, healthz, rss, write_config

from monitor.service.health import Limits, health

LIMITS = Limits.of(heartbeat_seconds=30, fetch_timeout=30, extract_timeout=60)


@pytest.mark.timeout(150)
def test_a_worker_whose_every_slot_waits_on_slow_servers_is_healthy(
        server: LocalServer, tmp_path: Path) -> None:
    # 20 feeds of 2 entries each, whose pages take 40 s: every poll slot (16: twice the
    # 8 requests at a time) and every entry a worker may hold are taken, so it claims
    # nothing for 40 s; each request may take up to 60 s.
    feeds = []
    for i in range(20):
        links = [server.url(f"/page{i}-{j}.html") for j in range(2)]
        server.routes[f"/f{i}.rss"] = Route(body=rss(f"F{i}", [
            Entry(f"Story {i}-{j}", link, guid=link) for j, link in enumerate(links)]))
        for link in links:
            server.routes[link.removeprefix(server.url(""))] = Route(
                body=b"<html><body><p>slow</p></body></html>", delay=40)
        feeds.append({"name": f"F{i}", "url": server.url(f"/f{i}.rss")})
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=feeds, fetch={"concurrency": 8, "per_host": 8, "timeout": "60s"},
                          daemon={"listen": "127.0.0.1:0", "shutdown_timeout": "1s"})
    daemon = Daemon(config, log=tmp_path / "d.log")
    try:
        assert daemon.wait_for(lambda: "serving http://" in daemon.log(), 30), daemon.log()
        [base] = re.findall(r"serving (http://127\.0\.0\.1:\d+)/healthz", daemon.log())
        # Pages in flight (a slow answer is logged once it is sent).
        assert daemon.wait_for(lambda: server.in_flight >= 8, 30), daemon.log()
        started = time.monotonic()
        seen = []
        while time.monotonic() - started < 38:
            seen.append(healthz(base))
            time.sleep(2)
        assert all(status == 200 for status, _ in seen), [h for s, h in seen if s != 200]
        busy = seen[-1][1]
        assert busy["polls_in_flight"] == 16, busy
        assert isinstance(busy["progress_seconds_ago"], float) \
            and busy["progress_seconds_ago"] > 30, busy  # nothing finished: busy, not stuck
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_busy_is_healthy_until_nothing_could_still_be_moving() -> None:
    assert LIMITS.stall_after == 30 + 60 + 30 and LIMITS.db_within == 60
    busy = dict(polls_in_flight=16, db_problem=None, stopping=False, limits=LIMITS)
    assert health("w", db_age=20, progress_age=100, **busy).ok  # type: ignore[arg-type]
    stuck = health("w", db_age=20, progress_age=121, **busy)  # type: ignore[arg-type]
    assert not stuck.ok and str(stuck.detail["reason"]).startswith("stuck: 16 polls")
    # Idle is fine however long nothing moved; a silent database is not.
    idle = dict(busy, polls_in_flight=0)
    assert health("w", db_age=20, progress_age=3600, **idle).ok  # type: ignore[arg-type]
    silent = health("w", db_age=61, progress_age=1, **idle)  # type: ignore[arg-type]
    assert not silent.ok and "database has not answered for 61s" in str(silent.detail["reason"])
    failing = health("w", db_age=61, progress_age=1,  # type: ignore[arg-type]
                     **dict(idle, db_problem="database: connection refused"))
    assert failing.detail["reason"] == "database: connection refused"
    assert health("w", db_age=None, progress_age=None, **idle).detail["reason"] \
        == "starting: no feeds claimed yet"  # type: ignore[arg-type]
    assert not health("w", db_age=1, progress_age=1,  # type: ignore[arg-type]
                      **dict(idle, stopping=True)).ok
