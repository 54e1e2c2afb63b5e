"""A fast local web for the throughput benchmarks: feeds and article pages served from
127.0.0.x (one address per "site", so per-host limits apply as they would on the
internet), in a process of its own so the server never shares the daemon's GIL.

Pages are the real ones in ../shared/corpus/pages when present, otherwise generated.
Page ``j`` beyond the corpus size is a variant of corpus page ``j % size``: the same
markup with the ASCII letters of its visible text permuted (a permutation per copy),
so it costs trafilatura the same work but is a different article to dedup.

Feeds come in two modes:
- ``static``: feed ``i`` lists pages ``i*E … i*E+E-1`` and answers a conditional GET
  with 304;
- ``rolling``: each request of feed ``i`` lists the next E pages never listed before
  (a newsroom that never stops), for the memory benchmark.

``GET /_stats`` returns counters as JSON: requests, 304s, the time of the first feed
request (the start-up benchmark's "first poll"); ``GET /_restart`` forgets that time.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import multiprocessing
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "pages"

_SPLIT = re.compile(r"(<[^>]*>)")
_ENTITY = re.compile(r"(&#?\w+;)")
_LOWER = b"abcdefghijklmnopqrstuvwxyz"


def base_pages(corpus: Path = CORPUS) -> list[bytes]:
    """The real pages (sorted by file name), or 60 generated ones when there is no corpus."""
    files = sorted(corpus.glob("*.html.gz"))
    if files:
        return [gzip.decompress(f.read_bytes()) for f in files]
    return [_generated(i) for i in range(60)]


def _generated(i: int) -> bytes:
    rng = random.Random(i)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(600)
    ]
    paras = "".join(
        "<p>" + " ".join(rng.choice(words) for _ in range(rng.randint(30, 90))) + ".</p>\n"
        for _ in range(rng.randint(6, 20))
    )
    nav = "".join(f'<li><a href="/section/{k}">Section {k}</a></li>' for k in range(40))
    return (
        f"<!doctype html><html lang=en><head><title>Generated article {i}</title>"
        f'<meta name="author" content="Reporter {i % 7}"></head><body>'
        f"<header><nav><ul>{nav}</ul></nav></header><main><article><h1>Generated article {i}"
        f"</h1>{paras}</article></main><footer><ul>{nav}</ul></footer></body></html>"
    ).encode()


class _Scramble(dict[int, int]):
    """A str.translate table for one copy: ASCII letters by a random permutation, other
    letters (Cyrillic, CJK …) rotated within their 32-code-point block by an offset
    drawn per block, so no copy shares words with another."""

    def __init__(self, copy: int) -> None:
        super().__init__()
        self.rng = random.Random(copy)
        perm = list(_LOWER.decode())
        self.rng.shuffle(perm)
        for src, dst in zip(_LOWER.decode(), perm, strict=True):
            self[ord(src)] = ord(dst)
            self[ord(src.upper())] = ord(dst.upper())
        self.offsets: dict[int, int] = {}

    def __missing__(self, cp: int) -> int:
        out = cp
        if cp > 127 and chr(cp).isalpha():
            block = cp & ~31
            offset = self.offsets.setdefault(block, self.rng.randrange(1, 32))
            out = block + (cp - block + offset) % 32
        self[cp] = out
        return out


def variant(html: bytes, copy: int) -> bytes:
    """``html`` with the letters of its text (not its tags, scripts, styles or entities)
    scrambled by a table chosen by ``copy``; copy 0 is the page itself. Pages that are
    not UTF-8 get their ASCII letters scrambled only."""
    if copy == 0:
        return html
    table = _Scramble(copy)
    try:
        doc = html.decode("utf-8")
    except UnicodeDecodeError:
        doc = html.decode("latin-1")
        for cp in range(128, 256):
            table[cp] = cp
        encoding = "latin-1"
    else:
        encoding = "utf-8"
    out: list[str] = []
    skip = False
    for part in _SPLIT.split(doc):
        if part.startswith("<"):
            low = part[:8].lower()
            if low.startswith(("<script", "<style")):
                skip = True
            elif low.startswith(("</script", "</style")):
                skip = False
            out.append(part)
        elif skip or not part:
            out.append(part)
        else:
            out.extend(p if p.startswith("&") else p.translate(table) for p in _ENTITY.split(part))
    return "".join(out).encode(encoding)


@dataclass(frozen=True)
class Spec:
    feeds: int
    per_feed: int  # entries per feed
    hosts: int
    mode: str = "static"  # "static" | "rolling"
    corpus: str = str(CORPUS)
    pregenerate: int = 0  # pages built before serving (the rest on demand)


class Pages:
    """Page ``j`` of the benchmark, the same in every process."""

    def __init__(self, corpus: Path = CORPUS) -> None:
        self.base = base_pages(corpus)
        self._cache: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self.base)

    def get(self, j: int) -> bytes:
        page = self._cache.get(j)
        if page is None:
            page = variant(self.base[j % len(self.base)], j // len(self.base))
        return page

    def keep(self, j: int) -> bytes:
        page = self._cache[j] = self.get(j)
        return page


def host_of(j: int, hosts: int) -> str:
    return f"127.0.0.{2 + j % hosts}"


def feed_xml(i: int, pages: range, base: dict[str, str], hosts: int) -> bytes:
    items = []
    for j in pages:
        link = f"{base[host_of(j, hosts)]}/page/{j}.html"
        day = 1 + j % 28
        items.append(
            f"<item><title>Article {j}</title><link>{link}</link><guid>{link}</guid>"
            f"<pubDate>Mon, {day:02d} Nov 2026 {j % 24:02d}:{j % 60:02d}:00 GMT</pubDate>"
            f"<description>Summary of article {j}.</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Bench feed {i}</title><link>{base[host_of(i, hosts)]}/</link>"
        f"<description>benchmark feed {i}</description>{''.join(items)}</channel></rss>"
    ).encode()


class _Server:
    def __init__(self, spec: Spec, base: dict[str, str]) -> None:
        self.spec = spec
        self.base = base
        self.pages = Pages(Path(spec.corpus))
        for j in range(spec.pregenerate):
            self.pages.keep(j)
        self.next_page = spec.feeds * spec.per_feed  # rolling: pages not yet listed
        self.stats: dict[str, Any] = {"requests": 0, "not_modified": 0, "feeds": 0,
                                      "pages": 0, "first_feed_request": None}
        self._feed_cache: dict[int, bytes] = {}

    def answer(self, path: str, inm: str | None) -> tuple[int, bytes, str, str | None]:
        self.stats["requests"] += 1
        if path == "/_stats":
            return 200, json.dumps(self.stats).encode(), "application/json", None
        if path == "/_restart":  # the next feed request starts a new timing
            self.stats["first_feed_request"] = None
            return 200, b"{}", "application/json", None
        if path.startswith("/feed/"):
            i = int(path[6:].split(".")[0])
            if self.stats["first_feed_request"] is None:
                self.stats["first_feed_request"] = time.time()
            self.stats["feeds"] += 1
            return self._feed(i, inm)
        if path.startswith("/page/"):
            self.stats["pages"] += 1
            j = int(path[6:].split(".")[0])
            return 200, self.pages.get(j), "text/html; charset=utf-8", None
        return 404, b"not found", "text/plain", None

    def _feed(self, i: int, inm: str | None) -> tuple[int, bytes, str, str | None]:
        spec = self.spec
        if spec.mode == "static":
            etag = f'"f{i}"'
            if inm == etag:
                self.stats["not_modified"] += 1
                return 304, b"", "application/rss+xml", etag
            body = self._feed_cache.get(i)
            if body is None:
                first = i * spec.per_feed
                body = self._feed_cache[i] = feed_xml(
                    i, range(first, first + spec.per_feed), self.base, spec.hosts)
            return 200, body, "application/rss+xml", etag
        first = self.next_page
        self.next_page += spec.per_feed
        body = feed_xml(i, range(first, first + spec.per_feed), self.base, spec.hosts)
        return 200, body, "application/rss+xml", f'"{hashlib.md5(body).hexdigest()}"'


_REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found"}


class _Protocol(asyncio.Protocol):
    """Just enough HTTP/1.1 for the benchmark: GET, keep-alive, If-None-Match."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            inm = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "if-none-match":
                    inm = value.strip()
            status, body, ctype, etag = self.server.answer(path, inm)
            head_out = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                        f"Content-Length: {len(body)}\r\n")
            if etag:
                head_out += f"ETag: {etag}\r\n"
            assert self.transport is not None
            self.transport.write(head_out.encode() + b"\r\n" + body)


def _serve(spec: Spec, conn: Connection) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        base: dict[str, str] = {}
        server = _Server(spec, base)
        for h in range(spec.hosts):
            host = f"127.0.0.{2 + h}"
            srv = await loop.create_server(lambda: _Protocol(server), host, 0, backlog=1024)
            base[host] = f"http://{host}:{srv.sockets[0].getsockname()[1]}"
        conn.send(base)
        await asyncio.Event().wait()

    asyncio.run(main())


class Site:
    """The server process. ``with Site(spec) as site: site.feed_urls()``."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(spec, child), daemon=True)

    def __enter__(self) -> Site:
        self._proc.start()
        if not self._conn.poll(600):
            raise RuntimeError("the benchmark server did not start")
        self.base: dict[str, str] = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.join(5)

    @property
    def pid(self) -> int:
        """The server process's pid (to leave it out of a process tree's RSS)."""
        return self._proc.pid or -1

    def feed_urls(self) -> list[str]:
        return [f"{self.base[host_of(i, self.spec.hosts)]}/feed/{i}.xml"
                for i in range(self.spec.feeds)]

    def stats(self, path: str = "/_stats") -> dict[str, Any]:
        with urlopen(f"{self.base[host_of(0, self.spec.hosts)]}{path}", timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def restart_timing(self) -> None:
        """Forget the first feed request: the next one starts a new timing."""
        self.stats("/_restart")


def write_config(path: Path, db_url: str, feed_urls: list[str], *, interval: str,
                 level: str = "WARNING", fetch: dict[str, object] | None = None,
                 extract: dict[str, object] | None = None,
                 poll: dict[str, object] | None = None,
                 rules: dict[str, str] | None = None,
                 stories: dict[str, object] | None = None) -> None:
    """A monitor config for a benchmark run: the project's seeds, no pause between two
    requests to one host, no HTTP listener, ``rules`` (name -> query) alerting one
    recipient, and one feed per URL polled every ``interval``."""
    sections: dict[str, dict[str, object]] = {
        "database": {"url": db_url}, "seeds": {"path": str(ROOT / "seeds")},
        "logging": {"level": level}, "fetch": {"host_delay": "0s", **(fetch or {})},
        "extract": extract or {}, "poll": poll or {}, "daemon": {"listen": ""},
        "stories": stories or {},
    }
    # JSON's strings, numbers and lists of strings are TOML's too.
    out = [f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
           for name, keys in sections.items() if keys]
    out += [f"[[rules]]\nname = {json.dumps(name)}\nquery = {json.dumps(query)}\n"
            'recipients = ["desk@example.org"]\n' for name, query in (rules or {}).items()]
    out += [f'[[feeds]]\nname = "bench {i}"\nurl = "{url}"\ninterval = "{interval}"\n'
            for i, url in enumerate(feed_urls)]
    path.write_text("\n".join(out))


# --- CPU and memory of a process tree ---------------------------------------------------

def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, …)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one live process (0 once it is gone)."""
    try:
        fields = _stat(pid)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat(entry)[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(pid: int) -> Iterator[int]:
    kids = _children()
    todo = [pid]
    while todo:
        p = todo.pop()
        yield p
        todo.extend(kids.get(p, []))


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    return sum(cpu_seconds(p) for p in _tree(pid))


def rss_mb(pid: int) -> float:
    """Resident memory of one process, MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int, *, exclude: int | None = None) -> tuple[float, float]:
    """(RSS of ``pid`` itself, RSS of ``pid`` and all its descendants), MB."""
    own = rss_mb(pid)
    total = sum(rss_mb(p) for p in _tree(pid) if p != exclude and p != pid) + own
    return own, total
