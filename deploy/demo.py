"""``make demo``: monitor at work without the internet.

Starts a local news site built from real articles kept in the repository
(tests/fixtures: two real pages of the extraction benchmark that report the same
event, ECB+ write-ups of one event by different writers, and the seed corpus), with
several outlets, syndicated copies and one story told twice; a local SMTP server that
keeps what it receives and a chat room's incoming webhook (Mattermost's kind) that two
rules notify; runs ``monitor run`` against them for a minute, then sends the digest, and
leaves in ``demo/`` (or ``--out``): the database, the config, the digest as
``digest.eml`` and ``digest.html``, what the chat room was told in ``chat.md``, the
daemon's log and ``SUMMARY.md``, which says what happened and what to try next.

    .venv/bin/python deploy/demo.py [--out demo] [--seconds 60]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MONITOR = [sys.executable, "-m", "monitor"]
# Two real pages (the extraction benchmark's) reporting one event: New York's attorney
# general investigating WeWork, by VentureBeat and by TechCrunch.
WEWORK = {"Tech Desk": "06e5123e4e",
          "Startup Wire": "1ace8c85aa"}
RULES = [
    {"name": "WeWork", "query": "WeWork OR \"co-working\"", "recipients": ["desk@demo.example"],
     "notify": ["newsroom-chat"]},
    {"name": "Paris heist", "query": "heist OR jewel* OR diamond*",
     "recipients": ["desk@demo.example"], "notify": ["newsroom-chat"]},
    {"name": "Russia and Venezuela", "query": "Venezuela AND (Russia OR Kremlin OR Moscow)",
     "recipients": ["desk@demo.example", "analyst@demo.example"]},
    {"name": "Earthquakes", "query": "earthquake OR quake", "recipients": ["analyst@demo.example"]},
]


CHAT_HOOK = "/hooks/newsroom"  # a Mattermost incoming webhook, played by the local site


class Site:
    """Feeds and pages served from memory on 127.0.0.1, and a chat room's incoming
    webhook that keeps what it is sent."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.chat: list[dict[str, Any]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body, kind = site.routes.get(self.path, (b"not found", "text/plain"))
                self.send_response(200 if self.path in site.routes else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = self.path == CHAT_HOOK
                if ok:
                    site.chat.append(json.loads(body))
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path


def _page(title: str, text: str, outlet: str, footer: str = "") -> bytes:
    paras = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n") if p.strip())
    return (f"<!doctype html><html><head><title>{escape(title)} | {escape(outlet)}</title>"
            f"</head><body><header><nav><a href='/'>{escape(outlet)}</a></nav></header>"
            f"<article><h1>{escape(title)}</h1>{paras}{footer}</article>"
            "<footer>© the outlet</footer></body></html>").encode()


def _rss(title: str, entries: list[dict[str, str]]) -> bytes:
    items = "".join(
        f"<item><title>{escape(e['title'])}</title><link>{escape(e['link'])}</link>"
        f"<guid isPermaLink=\"false\">{escape(e['guid'])}</guid><pubDate>{e['date']}</pubDate>"
        "</item>" for e in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>http://127.0.0.1/</link>"
            f"<description>{escape(title)}</description>{items}</channel></rss>").encode()


def build_site(site: Site, now: datetime) -> list[dict[str, str]]:
    """The outlets' feeds and pages. Returns the [[feeds]] of the config."""
    feeds: dict[str, list[dict[str, str]]] = {}
    hours = iter(range(1, 100))

    def publish(outlet: str, slug: str, title: str, body: bytes) -> None:
        path = f"/{outlet.lower().replace(' ', '-')}/{slug}.html"
        site.routes[path] = (body, "text/html; charset=utf-8")
        when = format_datetime(now - timedelta(hours=next(hours)), usegmt=True)
        feeds.setdefault(outlet, []).append(
            {"title": title, "link": site.url(path), "guid": f"{outlet}:{slug}", "date": when})

    # One story told twice: two real pages, two outlets' own write-ups of one event.
    truth = json.loads((FIXTURES / "pages" / "ground-truth.json").read_text("utf-8"))
    for outlet, prefix in WEWORK.items():
        name = next(n for n in truth if n.startswith(prefix))
        html = gzip.decompress((FIXTURES / "pages" / f"{name}.html.gz").read_bytes())
        found = re.search(rb"<title[^>]*>(.*?)</title>", html, re.S | re.I)
        title = " ".join(found.group(1).decode("utf-8", "replace").split()) if found else outlet
        publish(outlet, "wework", title.split(" | ")[0], html)
    # ECB+ write-ups, the longest of each event: the Paris heist by three outlets, an
    # earthquake by two.
    docs = [json.loads(line) for line in
            (FIXTURES / "events" / "ecbplus_sample.jsonl").read_text("utf-8").splitlines()]

    def longest(event: str) -> list[dict[str, str]]:
        return sorted((d for d in docs if d["event_id"] == event),
                      key=lambda d: -len(d["text"].split()))

    def headline(doc: dict[str, str]) -> str:
        first = doc["text"].strip().split("\n", 1)[0].split()
        return " ".join(first[:12]) + ("…" if len(first) > 12 else "")

    heists, quakes = longest("24_ecb"), longest("20_ecb")
    for outlet, doc in [*zip(["Paris Wire", "Evening Herald", "Gulf Courier"], heists,
                             strict=False),
                        *zip(["Gulf Courier", "Paris Wire"], quakes, strict=False)]:
        publish(outlet, doc["doc_id"], headline(doc), _page(headline(doc), doc["text"], outlet))
    # Syndication: Paris Wire's heist report run word for word by the Herald, and with
    # a new headline and the Courier's footer by the Courier.
    wire = heists[0]
    publish("Evening Herald", "wire-copy", headline(wire),
            _page(headline(wire), wire["text"], "Evening Herald"))
    retitled = "Diamond thieves in drag strike Paris again"
    publish("Gulf Courier", "syndicated-heist", retitled,
            _page(retitled, wire["text"], "Gulf Courier",
                  "<p>Read more stories like this at the Gulf Courier. Subscribe to our "
                  "newsletter.</p>"))
    # A seed article reposted: teleSUR's report, as another site carries it.
    seed = sorted((ROOT / "seeds").glob("*.txt"))[0].read_text("utf-8").strip()
    seed_title, _, seed_text = seed.partition("\n")
    seed_title = seed_title.strip("# ").strip()
    publish("Kremlin Watch", "russia-venezuela", seed_title,
            _page(seed_title, seed_text, "Kremlin Watch"))
    out = []
    for outlet, entries in feeds.items():
        path = f"/{outlet.lower().replace(' ', '-')}/rss.xml"
        site.routes[path] = (_rss(outlet, entries), "application/rss+xml")
        out.append({"name": outlet, "url": site.url(path)})
    return out


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def write_config(out: Path, feeds: list[dict[str, str]], smtp_port: int,
                 chat: str) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": f"sqlite:///{out / 'monitor.db'}"},
        "seeds": {"path": str(ROOT / "seeds")},
        "fetch": {"allow_private": ["127.0.0.1"], "host_delay": 0, "default_interval": "1m",
                  "timeout": "20s"},
        "extract": {"workers": 1},
        "digest": {"schedule": "0 7 * * *", "timezone": "UTC", "sender": "monitor@demo.example",
                   "sender_name": "monitor demo"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        "daemon": {"listen": ""},
    }
    lines = ["# The demo's config (deploy/demo.py): a local site, a local mail server and "
             "a local chat room."]
    for name, keys in sections.items():
        lines += ["", f"[{name}]"] + [f"{k} = {_toml(v)}" for k, v in keys.items()]
    channels = [{"name": "newsroom-chat", "kind": "mattermost", "url": chat, "batch": "1m"}]
    for table, items in (("feeds", feeds), ("rules", RULES), ("channels", channels)):
        for item in items:
            lines += ["", f"[[{table}]]"] + [f"{k} = {_toml(v)}" for k, v in item.items()]
    path = out / "monitor.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Mailbox:
    """aiosmtpd on 127.0.0.1, keeping every message."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.received: list[bytes] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.received.append(bytes(envelope.original_content or envelope.content))
                return "250 2.0.0 OK"

        with socket.socket() as probe:  # a free port: aiosmtpd cannot be given 0
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def monitor(config: Path, *args: str) -> str:
    done = subprocess.run([*MONITOR, "--config", str(config), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"monitor {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")
    return done.stdout


def lines(config: Path, *args: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in monitor(config, *args, "--json").splitlines() if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "demo")
    ap.add_argument("--seconds", type=float, default=60, help="how long the daemon runs")
    args = ap.parse_args()
    out = args.out.resolve()
    if out.exists():
        for old in ("monitor.db", "monitor.db-wal", "monitor.db-shm", "digest.eml",
                    "digest.html", "daemon.log", "SUMMARY.md", "monitor.toml", "chat.md"):
            (out / old).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    site, mailbox = Site(), Mailbox()
    try:
        config = write_config(out, build_site(site, datetime.now(UTC)), mailbox.port,
                              site.url(CHAT_HOOK))
        print(f"demo: a local site at {site.base} ({len(site.routes)} addresses), mail to "
              f"127.0.0.1:{mailbox.port}; running the daemon for {args.seconds:.0f} s …",
              flush=True)
        with (out / "daemon.log").open("w") as log:
            daemon = subprocess.Popen([*MONITOR, "--config", str(config), "run"], cwd=ROOT,
                                      stdout=log, stderr=subprocess.STDOUT)
            try:
                time.sleep(args.seconds)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(60)
        monitor(config, "digest", "send", "--now")
        summary = summarize(config, out, mailbox.received, site.chat)
    finally:
        mailbox.stop()
        site.server.shutdown()
    (out / "SUMMARY.md").write_text(summary, encoding="utf-8")
    print(summary)


def summarize(config: Path, out: Path, received: list[bytes],
              chat: list[dict[str, Any]]) -> str:
    items = lines(config, "items", "list")
    stories = lines(config, "stories", "list")
    alerts = lines(config, "alerts", "list")
    copies = [i for i in items if i["status"] == "duplicate"]
    how: dict[str, int] = {}
    for c in copies:
        how[c["dedup_method"]] = how.get(c["dedup_method"], 0) + 1
    told = [s for s in stories if len(s.get("outlets") or []) > 1]
    digest = next((m for m in received if b"desk@demo.example" in m), received[0] if received
                  else None)
    if digest is not None:
        (out / "digest.eml").write_bytes(digest)
        msg = message_from_bytes(digest, policy=policy.default)
        html = msg.get_body(("html",))
        (out / "digest.html").write_text(html.get_content() if html else "", encoding="utf-8")
    (out / "chat.md").write_text(
        "\n\n---\n\n".join(m.get("text", "") for m in chat) + "\n", encoding="utf-8")
    rel = (str(config.relative_to(Path.cwd())) if config.is_relative_to(Path.cwd())
           else str(config))
    return "\n".join([
        "# monitor demo",
        "",
        f"The daemon polled {len({i['feed'] for i in items})} local outlets and stored "
        f"{len(items)} articles: {len(items) - len(copies)} new, {len(copies)} copies "
        f"({', '.join(f'{n} by {m}' for m, n in sorted(how.items())) or 'none'}).",
        f"They make {len(stories)} stories, {len(told)} of them told by more than one outlet"
        + (f" (\"{told[0]['title']}\": {', '.join(told[0]['outlets'])})" if told else "") + ".",
        f"{len(alerts)} alerts for {len({a['rule'] for a in alerts})} rules; "
        f"{len(received)} digest{'' if len(received) == 1 else 's'} mailed"
        + (f": {out / 'digest.eml'} and {out / 'digest.html'}" if digest else "") + ".",
        f"The newsroom's chat room (a local Mattermost webhook) was told at once: "
        f"{len(chat)} message{'' if len(chat) == 1 else 's'}, one per story, in "
        f"{out / 'chat.md'}.",
        "",
        "Try next:",
        "",
        f"    .venv/bin/monitor --config {rel} stories list",
        f"    .venv/bin/monitor --config {rel} search 'diamond -drag'",
        f"    .venv/bin/monitor --config {rel} items list --status duplicate",
        f"    .venv/bin/monitor --config {rel} channels list newsroom-chat",
        f"    .venv/bin/monitor --config {rel} web --listen 127.0.0.1:9464"
        "    # then open http://127.0.0.1:9464/",
        "",
        f"The database is {out / 'monitor.db'}; the daemon's log {out / 'daemon.log'}.",
        "",
    ])


if __name__ == "__main__":
    main()
