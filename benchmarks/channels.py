"""How fast alert channel messages go out, as a user meets it: ``monitor channels send``
from process start to exit on a fresh database holding N queued alerts (each its own
message), to a local webhook receiver that answers 200 at once; against the floor of
the same number of sequential POSTs of the same size by plain aiohttp (not our code).

    .venv/bin/python benchmarks/channels.py [--sizes 100,1000] [--pg URL] [--repeat 3]

Prints per size and database: wall seconds (median of the repeats), messages per second,
milliseconds per message beyond the process's start-up (the run with 0 messages), and
the plain-aiohttp floor per message. A channel sends one message at a time (in order, one
claim transaction, one read, one request and one record each), so per-message cost is
what bounds a backlog after an outage: at 20 a minute by default the budget, not this,
is the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import sqlalchemy as sa

from monitor import db, store
from monitor.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle's algorithm the second
            # waits for the client's delayed ACK, 40 ms a request on Linux.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recv.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def write_config(path: Path, db_url: str, hook: str) -> Path:
    path.write_text(f"""
[database]
url = {json.dumps(db_url)}
[stories]
enabled = false
[daemon]
listen = ""
[[feeds]]
name = "Desk"
url = "http://127.0.0.1:9/feed.xml"
[[rules]]
name = "All"
query = "harbour"
recipients = []
notify = ["bench"]
[[channels]]
name = "bench"
kind = "webhook"
url = {json.dumps(hook)}
per_minute = 1000000
""", encoding="utf-8")
    return path


def fill(config: Path, n: int) -> None:
    """N originals, each with one alert queued for the channel, stored as the pipeline
    stores them."""
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    now = datetime.now(UTC)
    text = ("The harbour council met on Tuesday to discuss the grain tariff and the new "
            "pipeline, and the envoy of the ministry said the ballot would follow. ") * 8
    try:
        db.upgrade(engine)
        with db.session_factory(engine).begin() as s:
            store.sync_feeds(s, settings.feeds, now)
            store.sync_rules(s, settings.rules, now)
            feed_id = s.scalar(sa.text("select id from feeds"))
            rule_id = store.rule_ids(s, ["All"])["All"]
            for i in range(n):
                url = f"https://desk.example/{i}"
                item_id = store.add_item(s, store.NewItem(
                    feed_id=feed_id, guid=url, url=url, final_url=url, canonical_url=url,
                    title=f"Harbour council, report {i}", author=None, published_at=now,
                    fetched_at=now, language="en", site_name=None, text=f"{text} {i}",
                    text_source="page", text_hash=None, page_status=200, page_error=None,
                    duplicate_of=None, dedup_method=None, similarity=None), now)
                store.add_alerts(s, item_id, [store.NewAlert(
                    rule_id, "harbour", ("harbour",), f"The harbour council met ({i})…",
                    ("bench",))], now)
    finally:
        engine.dispose()


def send_once(config: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "monitor", "--config", str(config),
                           "channels", "send"], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    return time.perf_counter() - started, done.stdout.strip()


async def plain_posts(url: str, n: int, body: bytes) -> float:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for _ in range(n):
            async with session.post(url, data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
        return time.perf_counter() - started


def fresh_pg(admin_url: str) -> str:
    import uuid

    name = f"monitor_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_pg(admin_url: str, url: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                    help="an admin URL to create benchmark databases with ('' for none)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    receiver = Receiver()
    body = json.dumps({"text": "x" * 1200}).encode()
    print(f"machine: {platform.node()} {platform.machine()}, Python "
          f"{platform.python_version()}; receiver on 127.0.0.1 answering 200 at once")
    backends = ["sqlite"] + (["postgresql"] if args.pg else [])
    for backend in backends:
        start_up: list[float] = []
        for n in [0, *sizes]:
            walls = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as tmp:
                    url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" \
                        else fresh_pg(args.pg)
                    try:
                        config = write_config(Path(tmp) / "m.toml", url, receiver.url)
                        fill(config, n)
                        before = receiver.count
                        wall, said = send_once(config)
                        assert receiver.count - before == n, (n, said)
                        walls.append(wall)
                    finally:
                        if backend == "postgresql":
                            drop_pg(args.pg, url)
            wall = statistics.median(walls)
            if n == 0:
                start_up.append(wall)
                print(f"{backend}: start-up (0 messages) {wall:.2f} s")
                continue
            floor = statistics.median(asyncio.run(plain_posts(receiver.url, n, body))
                                      for _ in range(args.repeat))
            per = (wall - start_up[0]) / n * 1000
            print(f"{backend}: {n:>5} messages in {wall:6.2f} s ({n / wall:6.1f}/s); "
                  f"{per:5.2f} ms per message past start-up; plain aiohttp "
                  f"{floor / n * 1000:4.2f} ms per POST")


if __name__ == "__main__":
    main()
