"""The review page's HTML: Today, Story, Item, Feeds (and one feed), Search, Rules,
Digests, sign-in, and the form that marks an alert. Server-rendered from the
Jinja2 templates in ``templates/`` (autoescaped: a feed's title is text, never
markup), usable without script."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from importlib import resources
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session

from monitor import __version__
from monitor.rules import highlight, terms_labelled
from monitor.web import charts, views
from monitor.web.context import CONTEXT, SESSION, WHO, Context, safe_next, set_cookie
from monitor.web.security import Session as WebSession

PREVIEW_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox")
SEARCH_PAGE = 20


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", today)
    router.add_get("/stories/{id:\\d{1,18}}", story)
    router.add_get("/items/{id:\\d{1,18}}", item)
    router.add_get("/feeds", feeds)
    router.add_get("/feeds/{id:\\d{1,18}}", feed)
    router.add_get("/search", search)
    router.add_get("/rules", rules)
    router.add_get("/digests", digests)
    router.add_get("/digests/preview", digest_preview)
    router.add_post("/alerts/{id:\\d{1,18}}/feedback", mark)
    router.add_get("/login", login_form)
    router.add_post("/login", login)
    router.add_post("/logout", logout)
    router.add_get("/static/style.css", stylesheet)
    router.add_get("/static/favicon.svg", favicon)
    router.add_get("/favicon.ico", favicon)  # asked for by browsers whatever the page says


# --- rendering --------------------------------------------------------------------------

def _http(url: str | None) -> str | None:
    """Only an http(s) URL becomes a link: a feed's "javascript:" link never does."""
    if url and re.match(r"^https?://[^\s\"'<>]+$", url, re.IGNORECASE):
        return url
    return None


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def _marked(snippet: str, query: str, terms: list[str] | tuple[str, ...]) -> Markup:
    """A snippet with its matched words in <mark>, everything else escaped."""
    from markupsafe import escape

    from monitor.errors import QueryError
    from monitor.rules import parse

    try:
        labelled = terms_labelled(parse(query), terms)
    except QueryError:
        labelled = []
    return Markup("").join(Markup("<mark>%s</mark>") % t if hit else escape(t)
                           for t, hit in highlight(snippet, labelled))


@functools.cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("monitor.web", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html",)),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["http"] = _http
    env.globals["plural"] = _plural
    env.globals["marked"] = _marked
    env.globals["version"] = __version__
    return env


class Page:
    """What every template sees besides its own values."""

    def __init__(self, request: web.Request, ctx: Context) -> None:
        self.ctx = ctx
        self.tz: tzinfo = ZoneInfo(ctx.settings.digest.timezone)
        self.now = ctx.clock()
        session: WebSession | None = request.get(SESSION)
        self.who: str = request.get(WHO, "")
        self.auth = ctx.settings.web.kind
        self.csrf = ctx.csrf(session)
        self.path = request.path_qs

    def when(self, moment: datetime | None, *, seconds: bool = False) -> str:
        if moment is None:
            return "-"
        local = moment.astimezone(self.tz)
        return f"{local.day} {local:%b %Y, %H:%M{':%S' if seconds else ''}}"

    def iso(self, moment: datetime | None) -> str:
        return moment.isoformat() if moment else ""

    def ago(self, moment: datetime | None) -> str:
        if moment is None:
            return "never"
        secs = (self.now - moment).total_seconds()
        future = secs < 0
        secs = abs(secs)
        for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
            if secs >= size:
                text = _plural(int(secs // size), unit)
                break
        else:
            text = _plural(int(secs), "second")
        return f"in {text}" if future else f"{text} ago"

    def zone(self) -> str:
        return str(self.tz)


async def _render(request: web.Request, template: str, *, status: int = 200,
                  read: Callable[[Session], Any] | None = None,
                  **values: Any) -> web.Response:
    """Run ``read`` (if any) on a session and render ``template`` with its result as
    ``data``, both in the thread pool."""
    ctx = request.app[CONTEXT]
    page = Page(request, ctx)
    took: dict[str, float] = {}

    def work(s: Session | None) -> str:
        start = time.perf_counter()
        data = read(s) if read is not None and s is not None else None
        if read is not None and data is None:
            raise web.HTTPNotFound(text="not found\n")
        rendering = time.perf_counter()
        html = _environment().get_template(template).render(page=page, data=data, **values)
        took.update(db=rendering - start, render=time.perf_counter() - rendering)
        return html

    if read is None:
        html = await ctx.run(lambda: work(None))
    else:
        html = await ctx.read(work)
    # Where a page's time went, for the browser's developer tools and the benchmark.
    timing = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in took.items())
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers={"Server-Timing": timing})


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


# --- pages --------------------------------------------------------------------------------

async def today(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    return await _render(request, "today.html", nav="today",
                         read=lambda s: views.today(s, ctx.settings, ctx.clock()))


async def story(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    sid = _id(request)

    def read(s: Session) -> tuple[views.StoryPage, str] | None:
        p = views.story(s, sid, ctx.settings)
        if p is None:
            return None
        points = [((c.item.published_at or c.item.created_at).timestamp(),
                   f"{c.item.feed}: {c.item.title or '(untitled)'}") for c in p.items]
        return p, charts.timeline(points)

    return await _render(request, "story.html", nav="", read=read)


async def item(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    iid = _id(request)
    return await _render(request, "item.html", nav="",
                         read=lambda s: views.item(s, iid, ctx.settings))


def _feed_charts(fs: list[views.FeedView]) -> list[tuple[views.FeedView, Markup]]:
    # The chart is built from numbers and dates only, its text escaped (charts.py).
    return [(f, Markup(charts.daily_bars(f.daily, f.first_day.date()))) for f in fs]  # noqa: S704


async def feeds(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    return await _render(request, "feeds.html", nav="feeds",
                         read=lambda s: _feed_charts(views.feeds(s, ctx.clock(), ctx.settings)))


async def feed(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    fid = _id(request)

    def read(s: Session) -> tuple[tuple[views.FeedView, Markup], list[Any]] | None:
        from monitor import store

        found = views.feeds(s, ctx.clock(), ctx.settings, feed_id=fid)
        if not found:
            return None
        return _feed_charts(found)[0], store.list_items(s, feed_id=fid, limit=50)

    return await _render(request, "feed.html", nav="feeds", read=read)


def _offset(request: web.Request, key: str = "offset") -> int:
    raw = request.query.get(key, "0")
    if not raw.isdigit() or int(raw) > 10_000:
        raise web.HTTPBadRequest(text=f"{key}: give a number from 0 to 10000\n")
    return int(raw)


async def search(request: web.Request) -> web.Response:
    q = request.query.get("q", "").strip()
    offset = _offset(request)
    if not q:
        return await _render(request, "search.html", nav="search", q="", more_href="")

    def read(s: Session) -> views.Searched:
        return views.run_search(s, q, offset=offset, limit=SEARCH_PAGE)

    ctx = request.app[CONTEXT]
    found = await ctx.read(read)
    more = ("/search?" + urlencode({"q": q, "offset": offset + SEARCH_PAGE})
            if found.result is not None and found.result.more else "")
    page = Page(request, ctx)
    html = await ctx.run(lambda: _environment().get_template("search.html").render(
        page=page, data=found, nav="search", q=q, more_href=more))
    return web.Response(text=html, status=400 if found.error else 200,
                        content_type="text/html", charset="utf-8")


async def rules(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    test = request.query.get("test")
    return await _render(request, "rules.html", nav="rules", test=test or "",
                         read=lambda s: views.rules(s, ctx.settings, ctx.clock(), test))


async def digests(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    return await _render(request, "digests.html", nav="digests",
                         read=lambda s: views.digests(s, ctx.settings))


async def digest_preview(request: web.Request) -> web.Response:
    """The digest a recipient would get now: its HTML part, for a sandboxed frame (or
    opened alone), or with ``format=text`` its text part."""
    ctx = request.app[CONTEXT]
    recipient = request.query.get("recipient", "")
    text = request.query.get("format", "html") == "text"

    def read(s: Session) -> str | None:
        try:
            _, _, plain, html = views.preview(s, ctx.settings, recipient, ctx.clock())
            return plain if text else html
        except KeyError:
            return None

    body = await ctx.read(read)
    if body is None:
        raise web.HTTPNotFound(text="no rule has this recipient\n")
    if text:
        return web.Response(text=body, content_type="text/plain", charset="utf-8")
    return web.Response(text=body, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": PREVIEW_CSP,
                                 "X-Frame-Options": "SAMEORIGIN"})


async def mark(request: web.Request) -> web.Response:
    """A reviewer's verdict on an alert, from its form; back to the page it was on."""
    ctx = request.app[CONTEXT]
    form = await request.post()
    verdict = form.get("verdict")
    if verdict not in ("relevant", "not_relevant"):
        raise web.HTTPBadRequest(text="verdict: give relevant or not_relevant\n")
    aid = _id(request)
    who = request.get(WHO) or "local"
    done = await ctx.write(lambda s: views.mark_alert(s, aid, verdict == "relevant", who,
                                                      ctx.clock()))
    if not done:
        raise web.HTTPNotFound(text=f"no alert has the id {aid}\n")
    target = safe_next(str(form.get("next", "")))
    raise web.HTTPSeeOther(f"{target}#alert-{aid}" if "#" not in target else target)


async def login_form(request: web.Request, *, error: str = "", status: int = 200,
                     next_: str | None = None) -> web.Response:
    """The sign-in form; ``next_``: where to go after (else the query's ``next``)."""
    ctx = request.app[CONTEXT]
    return await _render(request, "login.html", nav="", error=error, status=status,
                         next=safe_next(next_ if next_ is not None else request.query.get("next")),
                         needed=ctx.settings.web.kind != "none")


async def login(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    form = await request.post()
    client = request.remote or "?"
    if ctx.settings.web.kind == "none":
        raise web.HTTPSeeOther("/")
    after = safe_next(str(form.get("next", "/")))  # kept when the form is shown again
    wait = ctx.throttle.blocked(client)
    if wait:
        return await login_form(request, status=429, next_=after,
                                error=f"Too many failed attempts: wait {int(wait) + 1} seconds.")
    who = " ".join(str(form.get("who", "")).split())[:80]
    secret = str(form.get("secret", ""))
    if not who:
        return await login_form(request, status=400, next_=after,
                                error="Give your name: it is recorded with your verdicts.")
    if not await ctx.run(lambda: ctx.credentials.check(secret)):
        ctx.throttle.failed(client)
        return await login_form(request, status=403, next_=after,
                                error="Wrong token or password.")
    keys = await ctx.keys()
    response = web.HTTPSeeOther(after)
    set_cookie(response, keys.cookie(keys.new_session(who, ctx.clock().timestamp())), request)
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie("monitor_session", path="/")
    raise response


async def favicon(request: web.Request) -> web.Response:
    svg = resources.files("monitor.web.static").joinpath("favicon.svg").read_bytes()
    return web.Response(body=svg, content_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})


async def stylesheet(request: web.Request) -> web.Response:
    css = resources.files("monitor.web.static").joinpath("style.css").read_text("utf-8")
    return web.Response(text=css, content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=3600"})
