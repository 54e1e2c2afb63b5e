"""Resource faults under a running `monitor run`, with real components: PostgreSQL
unreachable (a TCP proxy in front of it is cut, then restored), a SQLite file locked
by another connection for longer than the busy timeout, and a full disk (the SQLite
file on a small tmpfs filled with a ballast file). Each time the daemon logs the
fault without a traceback storm, keeps running, keeps what it had stored, and once
the fault clears polls again and stores what arrived meanwhile, including the feed
whose poll the fault cut short."""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, healthz, json_lines, rss, write_config
from sqlalchemy.engine import make_url

# Distinct texts, so that no story is taken for a near-duplicate of another.
TEXTS = {
    "a1": "The port authority in Valencia reopened the northern terminal on Monday. ",
    "s1": "Farmers in Barinas reported a late harvest of maize after heavy rains. ",
    "s2": "The central bank in Caracas published new figures on the exchange rate. ",
    "b1": "A new bridge over the Orinoco was opened to traffic near Ciudad Bolivar. ",
}
SLOW = 3.0  # seconds the slow feed takes to answer: the fault strikes during its poll


def story(key: str) -> Entry:
    return Entry(f"Story {key}", None, guid=key, content=TEXTS[key] * 10)


def titles(config: Path) -> set[str]:
    return {str(i["title"]) for i in json_lines(config, "items", "list")}


def setup_feeds(server: LocalServer) -> list[dict[str, object]]:
    """A: answers at once, stored before the fault. S: answers in SLOW seconds, so the
    fault strikes while its poll is in flight; it gets a new entry during the fault."""
    server.routes["/a.rss"] = Route(body=rss("A", [story("a1")]))
    server.routes["/s.rss"] = Route(body=rss("S", [story("s1")]), delay=SLOW)
    return [{"name": "A", "url": server.url("/a.rss"), "interval": "30s"},
            {"name": "S", "url": server.url("/s.rss"), "interval": "30s"}]


def start_and_poll(config: Path, log: Path) -> Daemon:
    """A daemon that has stored A's story and is in the middle of polling S."""
    daemon = Daemon(config, log=log)
    try:
        assert daemon.wait_for(
            lambda: "feed 'A'" in daemon.log() and "1 new" in daemon.log()
            and "feed 'S'" in daemon.log() and "polling" in daemon.log(), 40), daemon.log()
    except BaseException:
        daemon.kill()
        raise
    return daemon


def fault_lines(text: str) -> list[str]:
    """The log lines that are not about normal work: errors and warnings."""
    return [line for line in text.splitlines() if re.search(r"\b(ERROR|WARNING|CRITICAL)\b",
                                                            line)]


def assert_recovered(daemon: Daemon, config: Path, cleared: float,
                     also: frozenset[str] = frozenset(), timeout: float = 20) -> float:
    """S's story from before and the one added during the fault get stored (and the
    ``also`` ones), A's stays. Returns how long after ``cleared`` that took."""
    expected = {"Story a1", "Story s1", "Story s2", *also}
    assert daemon.wait_for(lambda: titles(config) == expected, timeout), daemon.log()
    resumed = time.monotonic() - cleared
    # The fault struck S's poll, which was polled again once it cleared.
    assert re.search(r"feed 'S' <.*>: the poll could not be stored: database: ", daemon.log())
    assert daemon.proc.poll() is None, daemon.log()
    assert "Traceback" not in daemon.log(), daemon.log()
    assert daemon.log().count("stop with SIGINT") == 1  # one start: never restarted
    return resumed


# --- PostgreSQL unreachable ----------------------------------------------------------------

class Proxy:
    """A TCP proxy on 127.0.0.1 to ``target``. :meth:`cut` closes the listening socket and
    every connection (the database is unreachable: connections fail and new ones are
    refused); :meth:`start` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_unreachable_for_a_while(server: LocalServer, db_url: str,
                                           tmp_path: Path) -> None:
    url = make_url(db_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    feeds = setup_feeds(server)
    server.routes["/b.rss"] = Route(body=rss("B", [story("b1")]))

    def configure(*extra: dict[str, object]) -> Path:
        return write_config(tmp_path / "m.toml", db_url=proxied, feeds=[*feeds, *extra],
                            poll={"jitter": 0, "backoff_base": "1s"},
                            daemon={"listen": "127.0.0.1:0", "config_check": "5s"})

    config = configure()
    daemon = start_and_poll(config, tmp_path / "d.log")
    try:
        [base] = re.findall(r"serving (http://127\.0\.0\.1:\d+)/healthz", daemon.log())
        assert healthz(base)[0] == 200

        # The database goes away while S's poll is in flight (its feed is being fetched).
        before = len(daemon.log().splitlines())
        proxy.cut()
        cut = time.monotonic()
        server.routes["/s.rss"] = Route(body=rss("S", [story("s1"), story("s2")]))
        # A feed added to the config meanwhile: the reload cannot store it yet.
        configure({"name": "B", "url": server.url("/b.rss"), "interval": "30s"})
        assert daemon.wait_for_log("claiming due feeds failed", 15), daemon.log()
        assert daemon.wait_for_log("config not reloaded", 15), daemon.log()
        # /healthz answers meanwhile (the event loop is not stuck on the database), and a
        # blip shorter than its 30 s allowance does not make the worker unhealthy.
        status, health = healthz(base)
        assert status == 200, health
        time.sleep(max(0.0, cut + 8 - time.monotonic()))
        during = daemon.log().splitlines()[before:]
        proxy.start()  # back, on the same port
        restored = time.monotonic()

        assert daemon.proc.poll() is None, daemon.log()
        faults = fault_lines("\n".join(during))
        assert faults, during
        assert len(faults) <= 10, faults  # backs off: not a line per attempt in a tight loop
        assert any("Connection refused" in line for line in faults), faults
        resumed = assert_recovered(daemon, config, restored, also=frozenset({"Story b1"}))
        assert "added 'B'" in daemon.log()
        assert healthz(base)[1]["status"] == "ok"
        print(f"outage {restored - cut:.1f}s, {len(faults)} error lines, "
              f"resumed {resumed:.1f}s after")
    finally:
        code = daemon.stop()
        proxy.cut()
    assert code == 0, daemon.log()


# --- SQLite locked -------------------------------------------------------------------------

BUSY_TIMEOUT = 30.0  # monitor.db: PRAGMA busy_timeout


@pytest.mark.timeout(120)
def test_sqlite_locked_longer_than_the_busy_timeout(server: LocalServer,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{path}",
                          feeds=setup_feeds(server), poll={"jitter": 0, "backoff_base": "1s"})
    daemon = start_and_poll(config, tmp_path / "d.log")
    try:
        # Another process's connection takes the write lock while S is being fetched,
        # and holds it past the daemon's busy timeout.
        before = len(daemon.log().splitlines())
        holder = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        locked = time.monotonic()
        server.routes["/s.rss"] = Route(body=rss("S", [story("s1"), story("s2")]))
        assert daemon.wait_for_log("database is locked", BUSY_TIMEOUT + SLOW + 10), \
            daemon.log()
        time.sleep(max(0.0, locked + BUSY_TIMEOUT + SLOW + 1 - time.monotonic()))
        holder.execute("ROLLBACK")
        holder.close()
        released = time.monotonic()
        during = daemon.log().splitlines()[before:]

        assert daemon.proc.poll() is None, daemon.log()
        faults = fault_lines("\n".join(during))
        assert 1 <= len(faults) <= 6, faults
        resumed = assert_recovered(daemon, config, released)
        print(f"locked {released - locked:.1f}s, {len(faults)} error lines, "
              f"resumed {resumed:.1f}s after")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()


# --- disk full -----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs, or a skip where mounting one is not allowed (not root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with path.open("wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


@pytest.mark.timeout(90)
def test_disk_full(server: LocalServer, tmp_path: Path, small_disk: Path) -> None:
    path = small_disk / "d.db"
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{path}",
                          feeds=setup_feeds(server), poll={"jitter": 0, "backoff_base": "1s"})
    daemon = start_and_poll(config, tmp_path / "d.log")
    ballast = small_disk / "ballast"
    try:
        before = len(daemon.log().splitlines())
        # What is committed goes into the database file, so that the next write has to
        # grow the write-ahead log: then the disk fills up.
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        fill(ballast)
        full = time.monotonic()
        server.routes["/s.rss"] = Route(body=rss("S", [story("s1"), story("s2")]))
        assert daemon.wait_for_log("database or disk is full", 15), daemon.log()
        assert daemon.wait_for_log("claiming due feeds failed", 15), daemon.log()
        time.sleep(max(0.0, full + 8 - time.monotonic()))
        during = daemon.log().splitlines()[before:]
        assert daemon.proc.poll() is None, daemon.log()
        ballast.unlink()
        freed = time.monotonic()

        faults = fault_lines("\n".join(during))
        assert 1 <= len(faults) <= 8, faults
        resumed = assert_recovered(daemon, config, freed)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        print(f"disk full {freed - full:.1f}s, {len(faults)} error lines, "
              f"resumed {resumed:.1f}s after")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()
