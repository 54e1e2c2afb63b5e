"""Ctrl-C in a terminal sends SIGINT to the daemon's whole process group, its worker
processes included; a service manager may send SIGTERM to all of them. Either way the
stop is the daemon's own: exit 0, no traceback, no feed recorded as failed because of
the stop, and the next start polls what was cut short."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import ROOT, Entry, article, cli, json_lines, rss, write_config

FEEDS = 10


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_signal_to_the_whole_process_group_stops_cleanly(
        server: LocalServer, db_url: str, tmp_path: Path, sig: signal.Signals) -> None:
    for i in range(FEEDS):
        server.routes[f"/f{i}.rss"] = Route(body=rss(f"Feed {i}", [
            Entry(f"Quick {i}", server.url(f"/quick/{i}"), guid=f"q{i}"),
            Entry(f"Slow {i}", server.url(f"/slow/{i}"), guid=f"s{i}")]))
        # Big pages (about 1 s of extraction each): extractions are in flight when
        # the signal comes.
        server.routes[f"/quick/{i}"] = Route(body=article(i, paragraphs=1500))
        server.routes[f"/slow/{i}"] = Route(body=article(100 + i), delay=60)
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": f"Feed {i}", "url": server.url(f"/f{i}.rss")}
                                 for i in range(FEEDS)],
                          daemon={"shutdown_timeout": "2s"},
                          fetch={"timeout": "90s", "per_host": 32, "concurrency": 32})
    log = tmp_path / "d.log"
    with log.open("wb") as out:
        # A session of its own: its process group is the daemon's and its workers', as
        # a terminal's foreground job is.
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config),
                                 "run"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        quick = [f"/quick/{i}" for i in range(FEEDS)]
        while (sorted(h.path for h in server.hits("/quick/")) != sorted(quick)
               or server.in_flight < FEEDS) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.in_flight == FEEDS, log.read_text()  # 10 polls wait on a slow page
        os.killpg(proc.pid, sig)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output and "never retrieved" not in output, output
    assert "died" not in output, output
    feeds = json_lines(config, "feeds", "list")
    assert [f for f in feeds if f["consecutive_failures"] or f["last_error"]] == [], feeds
    # The next start works on what the stop cut short.
    for i in range(FEEDS):
        server.routes[f"/slow/{i}"] = Route(body=article(100 + i))
    assert cli(config, "run", "--once")[0] == 0
    guids = {i["guid"] for i in json_lines(config, "items", "list")}
    assert guids == {f"q{i}" for i in range(FEEDS)} | {f"s{i}" for i in range(FEEDS)}
