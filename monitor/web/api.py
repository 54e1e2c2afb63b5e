"""The JSON API under ``/api/v1/``: stories, items, alerts (and feedback on them), feeds
and search, described by the OpenAPI document at ``/api/v1/openapi.json``.

A list answers ``{"data": [...], "next_cursor": "…" | null}``: newest first, ``limit``
at a time (default 50, at most 200); pass ``next_cursor`` back as ``cursor`` for the
next page. A cursor is opaque (it encodes where the page stopped, so a page stays
right while new items arrive). Errors answer ``{"error": "…"}`` with a 4xx status.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from monitor import store
from monitor.web import openapi, views
from monitor.web.context import CONTEXT, WHO, json_default

MAX_ID = 2**63 - 1  # ids are BIGINT; a larger one names nothing (routes take 18 digits)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/openapi.json", document)
    router.add_get("/api/v1/stories", stories)
    router.add_get("/api/v1/stories/{id:\\d{1,18}}", story)
    router.add_get("/api/v1/items", items)
    router.add_get("/api/v1/items/{id:\\d{1,18}}", item)
    router.add_get("/api/v1/alerts", alerts)
    router.add_post("/api/v1/alerts/{id:\\d{1,18}}/feedback", feedback)
    router.add_get("/api/v1/feeds", feeds)
    router.add_get("/api/v1/search", search)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False, default=json_default),
                        status=status, content_type="application/json", charset="utf-8")


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}),
                              content_type="application/json")


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad(f"limit: give a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, default=json_default).encode()) \
        .decode().rstrip("=")


def _cursor(request: web.Request) -> Any:
    """The decoded ``cursor`` parameter (None when absent). Raises 400 when it is not
    one this API gave."""
    raw = request.query.get("cursor")
    if raw is None or raw == "":
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise _bad("cursor: not a cursor this API gave (pass next_cursor back as it is)") \
            from None


def _int_cursor(request: web.Request) -> int | None:
    c = _cursor(request)
    if c is not None and (not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= MAX_ID):
        raise _bad("cursor: not a cursor this API gave")
    return c


def _page(data: list[dict[str, Any]], limit: int, next_value: Any) -> dict[str, Any]:
    more = len(data) > limit
    return {"data": data[:limit], "next_cursor": encode_cursor(next_value(data[limit - 1]))
            if more else None}


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _not_found(what: str, ident: int) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": f"no {what} has the id {ident}"}),
                            content_type="application/json")


# --- shapes (the OpenAPI document's schemas, in openapi.py, say the same) -----------------

def story_json(st: store.StoryListing) -> dict[str, Any]:
    return asdict(st)


def ref_json(ref: store.Ref | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"kind": ref.kind, "id": ref.id, "url": ref.url, "name": ref.seed}


def item_json(i: store.ItemRow, *, full: bool = False, why: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": i.id, "feed": i.feed, "feed_id": i.feed_id, "title": i.title, "url": i.url,
        "canonical_url": i.canonical_url, "published_at": i.published_at,
        "created_at": i.created_at, "language": i.language, "status": i.status,
        "dedup_method": i.dedup_method, "similarity": i.similarity,
        "duplicate_of": ref_json(i.duplicate_of), "story_id": i.story,
        "text_source": i.text_source}
    if why is not None:
        out["copy_reason"] = why or None
    if full:
        out.update({"text": i.text, "author": i.author, "site_name": i.site_name,
                    "final_url": i.final_url, "fetched_at": i.fetched_at,
                    "page_status": i.page_status, "page_error": i.page_error})
    return out


def feedback_json(f: store.Feedback | None) -> dict[str, Any] | None:
    return None if f is None else {"relevant": f.relevant, "by": f.by, "at": f.at}


def alert_json(a: store.AlertRow, f: store.Feedback | None) -> dict[str, Any]:
    return {"id": a.id, "rule": a.rule, "item_id": a.item_id, "story_id": a.story_id,
            "feed": a.feed, "title": a.title, "url": a.url, "published_at": a.published_at,
            "created_at": a.created_at, "sent_at": a.sent_at, "query": a.query,
            "terms": a.terms, "snippet": a.snippet, "backfilled": a.backfilled,
            "feedback": feedback_json(f)}


def feed_json(f: views.FeedView) -> dict[str, Any]:
    r = f.row
    return {"id": r.id, "name": r.name, "url": r.url, "fetch_url": r.fetch_url,
            "title": r.title, "enabled": r.enabled, "state": f.state,
            "interval_seconds": r.poll_interval_seconds or r.interval_seconds,
            "last_attempt_at": r.last_attempt_at, "last_success_at": r.last_success_at,
            "last_status": r.last_status, "last_error": r.last_error,
            "consecutive_failures": r.consecutive_failures, "parse_warning": r.parse_warning,
            "next_poll_at": r.next_poll_at, "items": r.items,
            "items_per_day": f.daily, "first_day": f.first_day.date().isoformat(),
            "category": f.category}


# --- handlers -------------------------------------------------------------------------------

async def document(request: web.Request) -> web.Response:
    return _json(openapi.document())


async def stories(request: web.Request) -> web.Response:
    limit, cursor = _limit(request), _cursor(request)
    before: tuple[datetime, int] | None = None
    if cursor is not None:
        try:
            before = (datetime.fromisoformat(cursor[0]), int(cursor[1]))
        except (TypeError, ValueError, IndexError, KeyError):
            raise _bad("cursor: not a cursor this API gave") from None
    rows = await request.app[CONTEXT].read(
        lambda s: store.list_stories(s, limit=limit + 1, before=before))
    return _json(_page([story_json(r) for r in rows], limit,
                       lambda d: [d["last_at"], d["id"]]))


async def story(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    sid = _id(request)
    p = await ctx.read(lambda s: views.story(s, sid, ctx.settings))
    if p is None:
        raise _not_found("story", sid)
    return _json({**story_json(p.story),
                  "reports": [item_json(c.item, why=c.why) for c in p.items],
                  "alerts": [alert_json(a, p.feedback.get(a.id)) for a in p.alerts]})


async def items(request: web.Request) -> web.Response:
    limit, before = _limit(request), _int_cursor(request)
    status = request.query.get("status")
    if status not in (None, "new", "duplicate"):
        raise _bad("status: give new or duplicate")
    feed_id = request.query.get("feed_id")
    if feed_id is not None and not (feed_id.isascii() and feed_id.isdigit()
                                    and int(feed_id) <= MAX_ID):
        raise _bad("feed_id: give a feed's id")
    fid = int(feed_id) if feed_id is not None else None
    rows = await request.app[CONTEXT].read(lambda s: store.list_items(
        s, status=status, limit=limit + 1, before_id=before, feed_id=fid))
    return _json(_page([item_json(r) for r in rows], limit, lambda d: d["id"]))


async def item(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    iid = _id(request)
    p = await ctx.read(lambda s: views.item(s, iid, ctx.settings))
    if p is None:
        raise _not_found("item", iid)
    return _json({**item_json(p.item, full=True, why=p.why),
                  "alerts": [alert_json(a, p.feedback.get(a.id)) for a in p.alerts],
                  "copies": [c.id for c in p.copies]})


async def alerts(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    limit, before = _limit(request), _int_cursor(request)
    rule = request.query.get("rule")

    def read(s: Session) -> list[dict[str, Any]]:
        rows = store.list_alerts(s, rule=rule, limit=limit + 1, before_id=before)
        marks = store.feedback_of(s, [r.id for r in rows])
        return [alert_json(r, marks.get(r.id)) for r in rows]

    return _json(_page(await ctx.read(read), limit, lambda d: d["id"]))


async def feedback(request: web.Request) -> web.Response:
    """``{"relevant": true|false, "by": "name"?}``: a reviewer's verdict on an alert."""
    ctx = request.app[CONTEXT]
    aid = _id(request)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _bad("the body must be JSON: {\"relevant\": true}") from None
    if not isinstance(body, dict) or not isinstance(body.get("relevant"), bool):
        raise _bad("relevant: give true or false")
    unknown = sorted(set(body) - {"relevant", "by"})
    if unknown:
        raise _bad(f"{unknown[0]}: unknown (give relevant, and by if you like)")
    by = body.get("by")
    if "by" in body and (not isinstance(by, str) or not by.strip() or len(by) > 80):
        raise _bad("by: give a name of 1 to 80 characters")
    who = " ".join(by.split()) if by else (request.get(WHO) or "api")
    now = ctx.clock()
    relevant = bool(body["relevant"])
    done = await ctx.write(lambda s: views.mark_alert(s, aid, relevant, who, now))
    if not done:
        raise _not_found("alert", aid)
    return _json({"alert_id": aid, "relevant": relevant, "by": who, "at": now})


async def feeds(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    limit, after = _limit(request), _int_cursor(request)
    views_ = await ctx.read(lambda s: views.feeds(s, ctx.clock(), ctx.settings))
    rows = sorted((f for f in views_ if after is None or f.row.id > after), key=lambda f: f.row.id)
    return _json(_page([feed_json(f) for f in rows[:limit + 1]], limit, lambda d: d["id"]))


async def search(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    q = request.query.get("q", "").strip()
    if not q:
        raise _bad("q: give a query, e.g. \"North Korea\" -Trump")
    limit, offset = _limit(request), _int_cursor(request) or 0
    found = await ctx.read(lambda s: views.run_search(s, q, offset=offset, limit=limit))
    if found.error is not None or found.result is None:
        raise _bad(f"q: {found.error}")
    data = []
    for g in found.result.groups:
        m = g.lead
        it = m.item
        data.append({"story_id": g.story_id, "item_id": it.id, "feed": it.feed,
                     "title": it.title, "url": it.url, "status": it.status,
                     "created_at": it.created_at, "published_at": it.published_at,
                     "score": round(m.score, 6), "terms": list(m.terms),
                     "snippet": m.snippet, "story_matches": len(g.matches)})
    return _json({"query": q, "reads": str(found.query), "data": data,
                  "next_cursor": encode_cursor(offset + limit) if found.result.more else None})
