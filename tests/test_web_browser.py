"""The review page in a real browser (headless Chromium through Playwright: see
tests/browser.py) over a real database: review_site.build stores feeds served by a
local server with a real ``monitor run --once`` (SQLite and PostgreSQL), and
``monitor web`` serves it. Every page must load without a console error, a failed
request or a request to anywhere but its own server; clicks must lead where they say;
a feed's hostile title must stay text.

One site per database per module (and per xdist worker): building one takes seconds.
Only test_mark_alert writes to it (feedback on one alert), and no other test reads
feedback."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import review_site
from browser import browser_fixture
from conftest import LocalServer, fresh_database
from review_site import HOSTILE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Response

HEIST = "Robbers in drag"  # the story Wire reported and Herald copied word for word
TOKEN_ENV = "MONITOR_WEB_TOKEN"
TOKEN = "browser-test-token-0123456789abcdef"
REVIEWER = "Ana Reviewer"
TIMEOUT_MS = 15_000

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module, not session: while Playwright's sync API is open, its event loop counts
    # as running in this thread, and a later module's asyncio.run() would refuse to start.
    yield from browser_fixture()


# --- sites -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    base: str  # http://127.0.0.1:PORT, monitor web
    config: Path


@contextmanager
def _site(tmp: Path, kind: str, pg_reason: str | None, web: dict[str, object] | None = None,
          env: dict[str, str] | None = None) -> Iterator[Site]:
    server = LocalServer()
    server.start()
    try:
        with fresh_database(kind, tmp, pg_reason) as url:
            # In a thread: Playwright's sync API holds this thread's event loop, and
            # ``run --once`` runs its own.
            with ThreadPoolExecutor(1) as pool:
                config = pool.submit(review_site.build, server, tmp, url, web=web).result()
            with review_site.serving(config, tmp / "web.log", env=env) as base:
                yield Site(base, config)
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         pg_reason: str | None) -> Iterator[Site]:
    """The review site (no sign-in: loopback) over a database of each kind."""
    with _site(tmp_path_factory.mktemp(f"site-{request.param}"), request.param, pg_reason) as s:
        yield s


@pytest.fixture(scope="module")
def token_site(tmp_path_factory: pytest.TempPathFactory,
               pg_reason: str | None) -> Iterator[Site]:
    """The review site with ``[web] auth = "env:MONITOR_WEB_TOKEN"`` (SQLite). The
    token must be in the environment when ``run --once`` loads the config, too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TOKEN_ENV, TOKEN)
        with _site(tmp_path_factory.mktemp("site-token"), "sqlite", pg_reason,
                   web={"auth": f"env:{TOKEN_ENV}"}, env={TOKEN_ENV: TOKEN}) as s:
            yield s


# --- a watched browser tab -----------------------------------------------------------------

@dataclass
class Tab:
    """A page in a fresh browser context (no cookies) that records what must not
    happen: console errors, page errors, failed requests, requests to another origin,
    dialogs, and answers of 400 or more."""

    page: Page
    base: str
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    seen: list[tuple[int, str]] = field(default_factory=list)  # every answer

    def go(self, path: str, status: int = 200) -> Response:
        response = self.page.goto(self.base + path)
        assert response is not None, path
        assert response.status == status, f"{path}: HTTP {response.status}"
        return response

    def url(self) -> str:
        """The current URL without the origin."""
        assert self.page.url.startswith(self.base + "/"), self.page.url
        return self.page.url.removeprefix(self.base)

    def assert_clean(self, allow: tuple[int, ...] = ()) -> None:
        """Nothing went wrong so far; ``allow``: statuses of 400 or more that a test
        asked for (then their "Failed to load resource" console line is expected)."""
        console = [c for c in self.console if not any(f"status of {s} " in c for s in allow)]
        bad = [b for b in self.bad if int(b.split()[0]) not in allow]
        assert console == [], f"console errors: {console}"
        assert self.failed == [], f"failed requests: {self.failed}"
        assert self.foreign == [], f"requests to another origin: {self.foreign}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        assert bad == [], f"error answers: {bad}"


@contextmanager
def tab(browser: Browser, base: str) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    t = Tab(page, base)
    page.on("console", lambda m: t.console.append(f"{m.text} ({m.location.get('url')})")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: t.console.append(f"page error: {e}"))
    def failed(r: Any) -> None:
        # Chromium fetches the icon after the page; a click that leaves the page first
        # aborts it, which is no fault of the page.
        if not (r.url.endswith("/favicon.svg") and r.failure == "net::ERR_ABORTED"):
            t.failed.append(f"{r.url}: {r.failure}")

    page.on("requestfailed", failed)
    page.on("request", lambda r: None if r.url.startswith(base + "/") else t.foreign.append(r.url))

    def dialog(d: Any) -> None:
        t.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    def response(r: Response) -> None:
        t.seen.append((r.status, r.url))
        if r.status >= 400:
            t.bad.append(f"{r.status} {r.url}")

    page.on("dialog", dialog)
    page.on("response", response)
    try:
        yield t
    finally:
        context.close()


def _api(base: str, path: str, token: str | None = None) -> Any:
    req = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _alert(base: str, alert_id: int, token: str | None = None) -> dict[str, Any]:
    found = [a for a in _api(base, "/api/v1/alerts?limit=100", token)["data"] if a["id"] == alert_id]
    assert len(found) == 1, f"alert {alert_id} not in the API's answer"
    return found[0]


def _text(page: Page, selector: str) -> str:
    return " ".join(page.locator(selector).inner_text().split())


def _fact(page: Page, name: str) -> str:
    """The value of a ``<dl class="facts">`` entry."""
    return " ".join(page.locator(f"dl.facts dt:text-is('{name}') + dd").inner_text().split())


# --- tests ---------------------------------------------------------------------------------

def test_every_page_loads_clean(browser: Browser, site: Site) -> None:
    """Each page answers 200 as HTML under the strict CSP, draws with its style sheet,
    and nothing fails, logs an error or goes to another origin."""
    with tab(browser, site.base) as t:
        page = t.page
        r = t.go("/")
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert _text(page, "h1") == "Today"
        assert re.search(r"\b11 alerts and \d+ new stories since\b", _text(page, "p.lead"))
        sections = page.locator("section.rule-section h2").all_inner_texts()
        assert [re.sub(r" \d+ stor(y|ies)$", "", h) for h in sections] == [
            "Heists", "Earthquakes", "Arrests"], sections
        # The style sheet loaded and applies (the CSP lets only it in).
        assert page.locator("header.top").evaluate(
            "e => getComputedStyle(e).backgroundColor") == "rgb(245, 247, 250)"
        assert (200, f"{site.base}/static/style.css") in t.seen
        story = page.locator("article.story h3 a[href^='/stories/']").first.get_attribute("href")
        item = page.locator("ul.reports a[href^='/items/']").first.get_attribute("href")
        assert story and item

        t.go(story)
        assert _text(page, "h1") and page.locator("table.items tbody tr").count() >= 1
        t.go(item)
        assert _fact(page, "Outlet") and _fact(page, "Dedup")
        assert page.locator("div.text p").count() >= 1

        t.go("/feeds")
        assert _text(page, "h1") == "Feeds"
        rows = page.locator("table.feeds tbody tr")
        assert rows.count() == 4
        assert "4 feeds, 1 failing" in _text(page, "p.lead")
        first = rows.first  # failing feeds are listed first
        assert first.locator("td").first.inner_text().startswith("Broken Gazette")
        assert "HTTP 500" in first.inner_text() and "failing" in first.inner_text()
        assert page.locator("table.feeds svg.chart").count() == 4
        feed = rows.nth(1).locator("a[href^='/feeds/']").get_attribute("href")
        assert feed
        t.go(feed)
        assert _fact(page, "State") == "ok"

        t.go("/search?q=diamond")
        assert _text(page, "p.parse") == "Reads: diamond"
        assert page.locator("ol.results li.result").count() >= 2

        t.go("/rules")
        assert page.locator("section.rule h2").all_inner_texts() == [
            "Heists", "Earthquakes", "Arrests"]
        t.go("/rules?test=quake")
        result = page.locator("section#test-result")
        assert result.locator("p.parse").inner_text() == "Reads: quake"
        titles = result.locator("ul.results > li > a").all_inner_texts()
        assert titles and any("Quake" in x for x in titles), titles

        t.go("/digests")
        assert _text(page, "h1") == "Digests"
        previews = page.locator("section.preview h3").all_inner_texts()
        assert previews == ["To desk@example.org", "To sports@example.org"]
        page.locator("section.preview").first.get_by_role("link", name="HTML").click()
        page.wait_for_url(re.compile(r"/digests/preview\?recipient=desk%40example.org$"))
        assert "Robbers in drag" in page.locator("body").inner_text()

        t.go("/login")
        assert "needs no sign-in" in _text(page, "main")
        t.assert_clean()


def test_click_through_story_item_feed(browser: Browser, site: Site) -> None:
    """Today → a story (title, timeline, outlets) → its copy → the copy's outlet."""
    with tab(browser, site.base) as t:
        page = t.page
        t.go("/")
        link = page.locator("article.story h3 a", has_text=HEIST)
        title = link.inner_text()
        link.click()
        page.wait_for_url(re.compile(r"/stories/\d+$"))
        assert _text(page, "h1") == title
        svg = page.locator("figure.timeline svg.timeline")
        assert svg.is_visible()
        assert svg.locator("circle.dot").count() == 2
        assert svg.locator("circle.dot title").all_text_contents() == [
            f"Wire: {title}", f"Herald: {title}"]
        assert _text(page, "p.meta") == "Outlets, first reporter first: Wire, Herald"
        assert page.locator("table.items tbody td:nth-child(2)").all_inner_texts() == [
            "Wire", "Herald"]

        page.locator("table.items tr.copy a[href^='/items/']").click()
        page.wait_for_url(re.compile(r"/items/\d+$"))
        assert _text(page, "h1") == title
        assert _fact(page, "Outlet").startswith("Herald")
        dedup = _fact(page, "Dedup")
        assert dedup.startswith("exact the same text as item "), dedup
        original = page.locator("dl.facts dt:text-is('Dedup') + dd a").get_attribute("href")
        assert original and re.fullmatch(r"/items/\d+", original)
        assert dedup.endswith(f"(item {original.rsplit('/', 1)[1]})")

        page.locator("dl.facts dt:text-is('Outlet') + dd a").click()
        page.wait_for_url(re.compile(r"/feeds/\d+$"))
        assert _text(page, "h1") == "Herald"
        assert _text(page, "p.crumbs") == "Feeds › Herald"
        chart = page.locator("dl.facts dt:text-is('Last 14 days') + dd svg.chart")
        assert chart.is_visible()
        assert chart.locator("rect").count() == 14
        stored = int(_fact(page, "Items"))
        assert chart.get_attribute("aria-label", timeout=TIMEOUT_MS) == (
            f"{stored} items in the last 14 days, at most {stored} a day")
        assert page.locator("ul.items li").count() == stored
        t.assert_clean()


def test_story_shows_the_exact_copy_and_why(browser: Browser, site: Site) -> None:
    with tab(browser, site.base) as t:
        page = t.page
        t.go("/")
        story = page.locator("article.story h3 a", has_text=HEIST).get_attribute("href")
        assert story
        t.go(story)
        assert "2 reports (1 original, 1 copy) from 2 outlets" in _text(page, "p.lead")
        original = page.locator("table.items tr.original")
        copy = page.locator("table.items tr.copy")
        assert original.count() == 1 and copy.count() == 1
        original_id = original.get_attribute("id", timeout=TIMEOUT_MS)
        assert original_id and original_id.startswith("item-")
        assert original.locator("td").nth(3).inner_text() == "original"
        assert copy.locator(".badge").inner_text() == "exact"
        why = " ".join(copy.locator("td").nth(3).inner_text().split())
        assert f"the same text as item {original_id.removeprefix('item-')}" in why, why
        assert copy.locator("td").nth(1).inner_text() == "Herald"
        t.assert_clean()


def test_search_box(browser: Browser, site: Site) -> None:
    """The header's search box (Enter submits), then a query that does not parse."""
    with tab(browser, site.base) as t:
        page = t.page
        t.go("/")
        box = page.locator("#quick-q")
        box.fill("diamond -drag")
        box.press("Enter")
        page.wait_for_url(re.compile(r"/search\?q=diamond\+-drag$"))
        assert page.locator("#q").input_value() == "diamond -drag"
        assert _text(page, "p.parse") == "Reads: diamond AND NOT drag"
        results = page.locator("ol.results li.result")
        assert results.count() >= 1
        for text in results.all_inner_texts():
            assert "diamond" in text.lower() and "drag" not in text.lower(), text
        assert page.locator("ol.results mark").first.inner_text().lower() == "diamond"

        box = page.locator("#q")
        box.fill('"unclosed')
        with page.expect_response(lambda r: "/search?" in r.url) as answer:
            box.press("Enter")
        assert answer.value.status == 400
        page.wait_for_url(re.compile(r"/search\?q=%22unclosed$"))
        assert _text(page, "h1") == "Search"
        error = page.locator("p.error[role=alert]")
        assert "never closed" in error.inner_text()
        assert page.locator("#q").input_value() == '"unclosed'
        assert page.locator("ol.results").count() == 0
        assert page.locator("footer").inner_text().startswith("monitor ")
        t.assert_clean(allow=(400,))


def test_hostile_title_stays_text(browser: Browser, site: Site) -> None:
    """A feed's title made of markup shows as those characters, runs nothing."""
    with tab(browser, site.base) as t:
        page = t.page
        t.go("/")
        links = page.get_by_role("link", name=HOSTILE, exact=True)
        assert links.count() == 2  # the story's title and its one report
        assert links.all_inner_texts() == [HOSTILE, HOSTILE]
        assert page.get_by_text(HOSTILE, exact=True).count() == 2
        assert page.locator("script").count() == 0
        assert page.locator("main b").count() == 0
        item = page.locator("ul.reports a", has_text="<script>").get_attribute("href")
        assert item

        page.locator("ul.reports a", has_text="<script>").click()
        page.wait_for_url(re.compile(r"/items/\d+$"))
        assert t.url() == item
        assert page.locator("h1").inner_text() == HOSTILE
        assert page.title() == f"{HOSTILE} · monitor"
        assert page.locator("script").count() == 0
        assert page.locator("main b").count() == 0
        assert _fact(page, "Outlet").startswith("Herald")
        t.assert_clean()
        assert t.dialogs == []


def _mark(t: Tab, anchor: str, verdict: str) -> None:
    """Click ``verdict`` on the alert ``li#anchor``; the answer must be the redirect
    back to it (fails at once, with the server's words, when it is not)."""
    with t.page.expect_response(lambda r: r.request.method == "POST") as answer:
        t.page.locator(f"li#{anchor}").get_by_role("button", name=verdict, exact=True).click()
    r = answer.value
    assert r.status == 303, f"HTTP {r.status}: {r.text().strip()}"
    t.page.wait_for_url(f"{t.base}/#{anchor}")


def test_mark_alert(browser: Browser, site: Site) -> None:
    """Relevant, then Not relevant, on Today's first alert: the page says so after
    each redirect, and the API has the last verdict."""
    with tab(browser, site.base) as t:
        page = t.page
        t.go("/")
        anchor = page.locator("li.alert").first.get_attribute("id")
        assert anchor and anchor.startswith("alert-")
        alert_id = int(anchor.removeprefix("alert-"))
        alert = page.locator(f"li#{anchor}")
        assert alert.locator(".verdict").count() == 0

        _mark(t, anchor, "Relevant")
        assert alert.locator(".verdict").inner_text().startswith("Marked relevant by local, ")
        assert alert.get_by_role("button", name="Relevant", exact=True).is_disabled()
        assert _alert(site.base, alert_id)["feedback"]["relevant"] is True

        _mark(t, anchor, "Not relevant")
        assert alert.locator(".verdict").inner_text().startswith("Marked not relevant by local, ")
        assert alert.get_by_role("button", name="Not relevant", exact=True).is_disabled()
        assert alert.get_by_role("button", name="Relevant", exact=True).is_enabled()
        t.assert_clean()
    feedback = _alert(site.base, alert_id)["feedback"]
    assert feedback["relevant"] is False
    assert feedback["by"] == "local"


def _sign_in(t: Tab, secret: str, who: str = REVIEWER) -> Response:
    """Fill in and send the sign-in form: the answer to the POST."""
    t.page.locator("#who").fill(who)
    t.page.locator("#secret").fill(secret)
    with t.page.expect_response(lambda r: r.request.method == "POST") as answer:
        t.page.get_by_role("button", name="Sign in").click()
    t.page.wait_for_load_state()
    return answer.value


def _next(t: Tab) -> str:
    """Where the sign-in page was asked to go next (its URL's ``next``)."""
    parts = urlsplit(t.url())
    assert parts.path == "/login", t.url()
    return parse_qs(parts.query)["next"][0]


def test_token_sign_in(browser: Browser, token_site: Site) -> None:
    """[web] auth = "env:…": Today sends a stranger to sign in; a wrong token is
    refused; the right one with a name lands on Today, which shows the name. The API
    wants the token."""
    base = token_site.base
    with tab(browser, base) as t:
        page = t.page
        r = t.go("/")
        assert r.request.redirected_from is not None
        assert r.request.redirected_from.url == f"{base}/"
        assert _next(t) == "/"
        assert _text(page, "h1") == "Sign in"
        assert page.locator("label[for=secret]").inner_text() == "Token"
        assert page.locator("li.alert").count() == 0

        assert _sign_in(t, "not-the-token-at-all-0123456789").status == 403
        assert _text(page, "p.error[role=alert]") == "Wrong token or password."
        assert _text(page, "h1") == "Sign in"
        assert page.locator("li.alert").count() == 0

        assert _sign_in(t, TOKEN).status == 303
        page.wait_for_url(f"{base}/")
        assert _text(page, "h1") == "Today"
        assert _text(page, "form.who span") == REVIEWER
        assert page.locator("li.alert").count() >= 1
        t.assert_clean(allow=(403,))
    with pytest.raises(urllib.error.HTTPError) as refused:
        _api(base, "/api/v1/alerts")
    assert refused.value.code == 401
    assert len(_api(base, "/api/v1/alerts", TOKEN)["data"]) >= 1


def test_signed_in_verdict_carries_the_name(browser: Browser, token_site: Site) -> None:
    base = token_site.base
    with tab(browser, base) as t:
        t.go("/")
        assert _sign_in(t, TOKEN, "Bo Checker").status == 303
        anchor = t.page.locator("li.alert").last.get_attribute("id")
        assert anchor and anchor.startswith("alert-")
        _mark(t, anchor, "Relevant")
        assert t.page.locator(f"li#{anchor} .verdict").inner_text().startswith(
            "Marked relevant by Bo Checker, ")
        t.assert_clean()
    feedback = _alert(base, int(anchor.removeprefix("alert-")), TOKEN)["feedback"]
    assert (feedback["relevant"], feedback["by"]) == (True, "Bo Checker")


def test_sign_out(browser: Browser, token_site: Site) -> None:
    base = token_site.base
    with tab(browser, base) as t:
        t.go("/")
        assert _sign_in(t, TOKEN).status == 303
        with t.page.expect_response(lambda r: r.request.method == "POST") as answer:
            t.page.get_by_role("button", name="Sign out").click()
        assert answer.value.status == 303, answer.value.text()
        t.page.wait_for_url(f"{base}/login")
        t.go("/feeds")
        assert _next(t) == "/feeds"


def test_sign_in_after_a_wrong_token_returns_to_the_page_asked_for(
        browser: Browser, token_site: Site) -> None:
    base = token_site.base
    with tab(browser, base) as t:
        t.go("/feeds")
        assert _next(t) == "/feeds"
        assert _sign_in(t, "not-the-token-at-all-0123456789").status == 403
        assert _sign_in(t, TOKEN).status == 303
        assert t.url() == "/feeds"


def test_favicon(site: Site) -> None:
    """A browser asks every site for /favicon.ico by itself, whatever the page links."""
    try:
        with urllib.request.urlopen(f"{site.base}/favicon.ico", timeout=10) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status < 400, f"/favicon.ico: HTTP {status}"
