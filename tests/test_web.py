"""The review page and its JSON API over HTTP: every page and answer on a database
filled by a real ``run --once`` (SQLite and PostgreSQL), the API checked against its
own OpenAPI document, cursors, feedback, CSRF, sign-in and the refusal to serve a
public address without it. The browser's view is in test_web_browser.py."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import review_site
from conftest import LocalServer
from helpers import Daemon, cli, json_lines, write_config
from markupsafe import escape

TOKEN = "tok-" + "x" * 28
PAGES = ["/", "/feeds", "/search?q=diamond", "/search?q=%22unclosed", "/rules",
         "/rules?test=quake", "/digests", "/login"]


class Client:
    """urllib with a cookie jar, that does not follow redirects (they are checked)."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        self.base, self.headers = base, headers or {}
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, path: str, *, data: bytes | None = None, method: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={**self.headers, **(headers or {})})
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request(path, **kw)

    def json(self, path: str) -> Any:
        status, headers, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        assert headers["Content-Type"].startswith("application/json")
        return json.loads(body)

    def form(self, path: str, fields: dict[str, str],
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return self.request(path, data=urllib.parse.urlencode(fields).encode(), method="POST",
                            headers={"Content-Type": "application/x-www-form-urlencoded",
                                     **(headers or {})})


def csrf_of(html: bytes) -> str:
    found = re.findall(rb'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found[0].decode()


@pytest.fixture
def site(server: LocalServer, db_url: str, tmp_path: Path) -> Any:
    config = review_site.build(server, tmp_path, db_url)
    with review_site.serving(config, tmp_path / "web.log") as base:
        yield config, base, tmp_path


def validator(doc: dict[str, Any], schema: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": doc["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_every_page_and_answer(site: Any) -> None:
    config, base, _ = site
    c = Client(base)
    for path in PAGES:
        status, headers, body = c.get(path)
        assert status == (400 if "unclosed" in path else 200), (path, status, body[:500])
        assert headers["Content-Type"].startswith("text/html")
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert b"<script" not in body, path  # no script of ours, and none of a feed's
    stories = json_lines(config, "stories", "list")
    items = json_lines(config, "items", "list")
    for st in stories[:5]:
        status, _, body = c.get(f"/stories/{st['id']}")
        assert status == 200 and str(escape(st["title"] or "")).encode() in body
    for it in items:
        status, _, body = c.get(f"/items/{it['id']}")
        assert status == 200, (it, body[:300])
    status, _, _ = c.get("/stories/999999")
    assert status == 404
    # The hostile title is shown as text: escaped, on every page that names it.
    _, _, today = c.get("/")
    assert b"&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; &#34;Quoted&#34; &amp; " \
           b"&lt;b&gt;bold&lt;/b&gt; claims" in today
    # New stories are what feeds reported: a seed's story is listed only once some
    # feed carried it (Courier ran seed 000, in the story of seeds 000/002/003; nobody
    # ran seed 001 or seed 002's untitled text).
    assert b"Russia Offers Support" not in today and b"(untitled)" not in today
    assert "4 reports · Courier ·" in today.decode()
    # The failing feed is listed first, with its error, and a 14-day chart per feed.
    _, _, feeds = c.get("/feeds")
    rows = re.findall(rb'<tr class="state-(\w+)" id="feed-\d+">', feeds)
    assert rows[0] == b"failing" and rows.count(b"failing") == 1 and len(rows) == 4
    assert b"HTTP 500" in feeds and feeds.count(b'<svg class="chart"') == 4
    # The config's category of a feed (Wire's: "Wires") is shown, and in the API.
    assert feeds.count(b'<span class="badge category">Wires</span>') == 1
    assert {f["name"]: f["category"] for f in c.json("/api/v1/feeds")["data"]} == {
        "Wire": "Wires", "Courier": None, "Herald": None, "Broken Gazette": None}
    # Digests: what waits for each recipient, counted; the next digest is a page of
    # its own, HTML (sandboxed) or text, the very digest `digest preview` prints.
    alerts = json_lines(config, "alerts", "list")
    _, _, page = c.get("/digests")
    for recipient in ("desk@example.org", "sports@example.org"):
        rules = {r["name"] for r in review_site.RULES if recipient in r["recipients"]}
        mine = [a for a in alerts if a["rule"] in rules]
        stories = {a["story_id"] for a in mine}
        assert f"<h3>To {recipient}</h3>" in page.decode()
        told = f"{len(stories)} " + ("story" if len(stories) == 1 else "stories")
        assert f"{len(mine)} alerts waiting, {told} · rules: " in page.decode()
    # The Heists rule's chat room (nothing listens): its messages wait, with why; its
    # URL (a secret) is shown as its scheme and host only.
    channel = page.decode().split("<h2>Alert channels</h2>", 1)[1].split("</table>", 1)[0]
    heists = {a["story_id"] for a in alerts if a["rule"] == "Heists"}
    assert "desk-room<div class=\"meta\">slack · http://127.0.0.1/…</div>" in channel
    # One attempt made (a channel that fails ends its round), the rest waiting behind it.
    assert f'<td class="num">{len(heists)}<div class="meta">1 retrying' in channel
    assert "connection refused" in channel and "SECRET" not in page.decode()
    status, headers, body = c.get("/digests/preview?recipient=desk%40example.org")
    assert status == 200 and "sandbox" in headers["Content-Security-Policy"]
    assert b"Robbers in drag" in body
    status, headers, body = c.get("/digests/preview?recipient=desk%40example.org&format=text")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    code, out = cli(config, "digest", "preview", "--recipient", "desk@example.org")
    assert code == 0 and body.decode().strip() and body.decode().strip() in out
    assert "Wire (Wires)" in out and "Herald (" not in out  # outlets with their category
    assert c.get("/digests/preview?recipient=nobody%40example.org")[0] == 404


def test_api_answers_match_its_openapi_document(site: Any) -> None:
    config, base, _ = site
    c = Client(base)
    doc = c.json("/api/v1/openapi.json")
    jsonschema.Draft202012Validator.check_schema(
        {"$ref": "#/components/schemas/Story", "components": doc["components"]})
    story_id = json_lines(config, "stories", "list", "--min-outlets", "2")[0]["id"]
    item_ids = [i["id"] for i in json_lines(config, "items", "list")]
    answers = {
        "/api/v1/stories": "StoryList", f"/api/v1/stories/{story_id}": "StoryDetail",
        "/api/v1/items": "ItemList", "/api/v1/alerts": "AlertList",
        "/api/v1/feeds": "FeedList", "/api/v1/search?q=diamond": "SearchResult",
        "/api/v1/search?q=quake+OR+jewel%2A&limit=1": "SearchResult",
        **{f"/api/v1/items/{i}": "ItemDetail" for i in item_ids},
    }
    for path, schema in answers.items():
        errors = list(validator(doc, schema).iter_errors(c.json(path)))
        assert not errors, (path, [e.message for e in errors[:3]])
    # Every API route is documented, and every documented path answers.
    from monitor.web import api

    documented = {p.replace("{id}", "1") for p in doc["paths"]}
    for path in documented:
        status, _, _ = c.get(path) if "feedback" not in path else (200, {}, b"")
        assert status in (200, 400, 404), path
    from aiohttp import web

    router = web.UrlDispatcher()
    api.add_routes(router)
    routes = {re.sub(r"\{id:[^}]+\}", "{id}", r.resource.canonical) for r in router.routes()}
    assert routes - {"/api/v1/openapi.json"} == set(doc["paths"])
    # Errors are JSON with a reason.
    for path in ("/api/v1/items?limit=0", "/api/v1/items?cursor=%%%", "/api/v1/search",
                 "/api/v1/search?q=%22unclosed", "/api/v1/items?status=gone"):
        status, _, body = c.get(path)
        assert status == 400 and json.loads(body)["error"], path
    status, _, body = c.get("/api/v1/items/999999")
    assert status == 404 and "999999" in json.loads(body)["error"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_nothing_against_the_openapi_document(site: Any) -> None:
    """Generated requests, valid and not, to every documented operation: no 500, every
    answer as documented (status, content type, schema), bad input refused with 4xx.
    ``positive_data_acceptance`` is left out: a cursor is opaque, so a generated string
    is rightly refused with 400. One backend: the handlers are the same on both."""
    _, base, tmp = site
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run",
         f"{base}/api/v1/openapi.json", "--url", base, "--seed", "23", "--max-examples", "40",
         "--exclude-checks", "positive_data_acceptance", "--generation-database", "none",
         "--no-color", "--request-timeout", "20"],
        cwd=tmp, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\b[1-9]\d* passed", proc.stdout), proc.stdout[-2000:]


def test_cursors_walk_every_row_once(site: Any) -> None:
    config, base, _ = site
    c = Client(base)
    expected = {
        "/api/v1/items": [i["id"] for i in json_lines(config, "items", "list")],
        "/api/v1/stories": [s["id"] for s in json_lines(config, "stories", "list")],
        "/api/v1/alerts": [a["id"] for a in json_lines(config, "alerts", "list")],
        "/api/v1/feeds": sorted(f["id"] for f in c.json("/api/v1/feeds")["data"]),
    }
    assert all(len(ids) >= 4 for ids in expected.values()), expected
    for path, ids in expected.items():
        seen: list[int] = []
        cursor = None
        for _ in range(100):
            q = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = c.json(path + q)
            assert len(page["data"]) <= 3
            seen += [d["id"] for d in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids, path
    hits: list[int] = []
    cursor = None
    while True:
        page = c.json("/api/v1/search?q=quake+OR+jewel%2A+OR+arrested&limit=2"
                      + (f"&cursor={cursor}" if cursor else ""))
        hits += [h["item_id"] for h in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(hits) == len(set(hits)) >= 5


def test_feedback_needs_the_pages_token_and_reaches_exports_and_digests(site: Any) -> None:
    config, base, _ = site
    alert = json_lines(config, "alerts", "list")[-1]
    browser = Client(base)
    status, _, page = browser.get(f"/items/{alert['item_id']}")
    assert status == 200
    token = csrf_of(page)
    path = f"/alerts/{alert['id']}/feedback"
    # No token, a wrong one, another site's form, a stranger without the cookie: refused.
    assert browser.form(path, {"verdict": "relevant"})[0] == 403
    assert browser.form(path, {"verdict": "relevant", "csrf": token + "x"})[0] == 403
    assert browser.form(path, {"verdict": "relevant", "csrf": token},
                        {"Origin": "http://evil.example"})[0] == 403
    assert Client(base).form(path, {"verdict": "relevant", "csrf": token})[0] == 403
    assert json_lines(config, "alerts", "list")[-1]["feedback"] is None
    status, headers, _ = browser.form(path, {"verdict": "relevant", "csrf": token,
                                             "next": "https://evil.example/"})
    assert status == 303 and headers["Location"] == f"/#alert-{alert['id']}"
    mark = json_lines(config, "alerts", "list")[-1]["feedback"]
    assert mark["relevant"] is True and mark["by"] == "local"
    # A program: JSON, which no browser sends to another site without a preflight.
    status, _, body = Client(base).request(
        f"/api/v1/alerts/{alert['id']}/feedback", method="POST",
        data=json.dumps({"relevant": False, "by": "Ana"}).encode(),
        headers={"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["by"] == "Ana"
    mark = json_lines(config, "alerts", "list")[-1]["feedback"]
    assert mark["relevant"] is False and mark["by"] == "Ana"
    # A body that is not the form it claims to be is refused, not a server error.
    status, _, _ = browser.request(path, method="POST", data=b'{"relevant": true}',
                                   headers={"Content-Type": "multipart/form-data"})
    assert status == 400
    code, out = cli(config, "alerts", "list")
    assert code == 0 and "marked not relevant by Ana" in out
    # The next digest to the rule's recipients counts the verdict.
    [rule] = [r for r in review_site.RULES if r["name"] == alert["rule"]]
    code, out = cli(config, "digest", "preview", "--recipient", rule["recipients"][0])
    assert code == 0 and "Reviewers since the last digest: 0 relevant, 1 not relevant" in out


def _config(tmp: Path, listen: str, web: dict[str, object] | None = None) -> Path:
    return write_config(tmp / "monitor.toml", db_url=f"sqlite:///{tmp / 'm.db'}",
                        feeds=[{"name": "A", "url": "http://127.0.0.1:9/a.rss"}],
                        daemon={"listen": listen}, extra={"web": web} if web else None)


def test_a_public_address_needs_auth(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code, _ = cli(_config(tmp_path, "0.0.0.0:9464"), "config", "show")
    assert code == 2
    assert "daemon.listen" in caplog.text and "0.0.0.0:9464" in caplog.text
    assert "[web] auth" in caplog.text
    local = _config(tmp_path, "127.0.0.1:0")
    for args in (("web", "--listen", "0.0.0.0:0"), ("run", "--listen", "192.168.1.5:9464")):
        caplog.clear()
        code, _ = cli(local, *args)
        assert code == 2 and "--listen" in caplog.text and "[web] auth" in caplog.text, args
    assert cli(_config(tmp_path, "[::1]:0"), "config", "show")[0] == 0
    assert cli(_config(tmp_path, "localhost:0"), "config", "show")[0] == 0


@pytest.mark.parametrize(("auth", "env", "why"), [
    ("hunter2", {}, "never the password itself"),
    ("env:MONITOR_WEB_TOKEN", {}, "MONITOR_WEB_TOKEN is not set"),
    ("env:MONITOR_WEB_TOKEN", {"MONITOR_WEB_TOKEN": "short"}, "only 5 characters"),
    ("env:9bad", {}, "not the name of an environment variable"),
])
def test_bad_auth_is_rejected_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture,
                                       auth: str, env: dict[str, str], why: str) -> None:
    monkeypatch.delenv("MONITOR_WEB_TOKEN", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _ = cli(_config(tmp_path, "127.0.0.1:0", {"auth": auth}), "config", "show")
    assert code == 2 and "web.auth" in caplog.text and why in caplog.text, caplog.text
    assert auth not in caplog.text or auth.startswith("env:")  # a password is not echoed


def test_token_sign_in_on_a_public_address(server: LocalServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_WEB_TOKEN", TOKEN)
    config = review_site.build(server, tmp_path, f"sqlite:///{tmp_path / 'm.db'}",
                               web={"auth": "env:MONITOR_WEB_TOKEN"}, listen="0.0.0.0:0")
    assert "(hidden)" in cli(config, "config", "show")[1]
    with review_site.serving(config, tmp_path / "web.log", env={"MONITOR_WEB_TOKEN": TOKEN},
                             listen="0.0.0.0:0") as base:
        c = Client(base)
        status, headers, _ = c.get("/stories/1")
        assert status == 303 and headers["Location"] == "/login?next=/stories/1"
        status, headers, body = c.get("/api/v1/stories")
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        assert json.loads(body)["error"]
        assert c.get("/healthz")[0] == 200  # a service manager's probe needs no token
        assert Client(base, {"Authorization": "Bearer nope"}).get("/api/v1/stories")[0] == 401
        bearer = Client(base, {"Authorization": f"Bearer {TOKEN}"})
        assert bearer.json("/api/v1/stories")["data"]
        status, _, body = c.form("/login", {"who": "Ana", "secret": "wrong", "next": "/feeds"})
        assert status == 403 and b"Wrong token" in body
        status, headers, _ = c.form("/login", {"who": "Ana", "secret": TOKEN, "next": "/feeds"})
        assert status == 303 and headers["Location"] == "/feeds"
        status, _, page = c.get("/")
        assert status == 200 and b"Ana" in page
        alert = bearer.json("/api/v1/alerts")["data"][0]
        status, _, _ = c.form(f"/alerts/{alert['id']}/feedback",
                              {"verdict": "relevant", "csrf": csrf_of(page)})
        assert status == 303
        assert bearer.json("/api/v1/alerts")["data"][0]["feedback"]["by"] == "Ana"
        # A cookie made under another key (another database, another token) is refused.
        forged = Client(base, {"Cookie": "monitor_session=e30.AAAA"})
        assert forged.get("/")[0] == 303


def test_password_sign_in_and_throttle(server: LocalServer, tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, "-m", "monitor", "--config",
                           str(_config(tmp_path, "127.0.0.1:0")), "web", "--hash-password"],
                          input="correct horse battery\n", capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    hashed = made.stdout.strip()
    assert hashed.startswith("$argon2id$") and "correct" not in hashed
    config = review_site.build(server, tmp_path, f"sqlite:///{tmp_path / 'm.db'}",
                               web={"auth": hashed})
    with review_site.serving(config, tmp_path / "web.log") as base:
        basic = base64.b64encode(b"any:correct horse battery").decode()
        assert Client(base, {"Authorization": f"Basic {basic}"}).json("/api/v1/feeds")["data"]
        wrong = base64.b64encode(b"any:wrong").decode()
        status, headers, _ = Client(base, {"Authorization": f"Basic {wrong}"}).get(
            "/api/v1/feeds")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        c = Client(base)
        for _ in range(10):
            assert c.form("/login", {"who": "Bo", "secret": "guess"})[0] == 403
        status, _, body = c.form("/login", {"who": "Bo", "secret": "correct horse battery"})
        assert status == 429 and b"Too many failed attempts" in body


def test_the_daemon_serves_the_page_beside_healthz(server: LocalServer, tmp_path: Path) -> None:
    config = review_site.build(server, tmp_path, f"sqlite:///{tmp_path / 'm.db'}",
                               listen="127.0.0.1:0")
    daemon = Daemon(config, log=tmp_path / "daemon.log")
    try:
        assert daemon.wait_for(lambda: "the review page at http://" in daemon.log(), 60), \
            daemon.log()
        [base] = re.findall(r"serving (http://127\.0\.0\.1:\d+)/healthz", daemon.log())
        c = Client(base)
        status, _, page = c.get("/")
        assert status == 200 and b"Heists" in page
        assert c.json("/api/v1/feeds")["data"]
        status, _, metrics = c.get("/metrics")
        assert status == 200 and b"monitor_" in metrics
        status, _, health = c.get("/healthz")
        assert status in (200, 503) and json.loads(health)["status"] in ("ok", "unhealthy")
    finally:
        assert daemon.stop() == 0, daemon.log()
