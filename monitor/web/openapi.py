"""The JSON API's OpenAPI 3.1 document (served at ``/api/v1/openapi.json``). Its
schemas are JSON Schema: the tests check every answer of the API against them, so the
two cannot drift apart unnoticed."""

from __future__ import annotations

import functools
from typing import Any

from monitor import __version__

_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}


def _obj(props: dict[str, Any], *, extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": sorted(props),
            "additionalProperties": extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list_of(name: str) -> dict[str, Any]:
    return _obj({"data": {"type": "array", "items": _ref(name)},
                 "next_cursor": {**_STR_OR_NULL,
                                 "description": "pass back as `cursor` for the next page"}})


_STORY = {
    "id": {"type": "integer"}, "title": _STR_OR_NULL, "language": _STR_OR_NULL,
    "first_at": _TIME, "last_at": _TIME, "items": {"type": "integer"},
    "outlets": {"type": "array", "items": {"type": "string"},
                "description": "the feeds that carried it, first reporter first"},
    "seeds": {"type": "array", "items": {"type": "string"}},
}
_ITEM = {
    "id": {"type": "integer"}, "feed": {"type": "string"}, "feed_id": {"type": "integer"},
    "title": _STR_OR_NULL, "url": _STR_OR_NULL, "canonical_url": _STR_OR_NULL,
    "published_at": _TIME_OR_NULL, "created_at": _TIME, "language": _STR_OR_NULL,
    "status": {"enum": ["new", "duplicate"]},
    "dedup_method": {"enum": ["guid", "url", "exact", "near", None]},
    "similarity": {"type": ["number", "null"]},
    "duplicate_of": {"oneOf": [{"type": "null"}, _ref("Ref")]},
    "story_id": _INT_OR_NULL,
    "text_source": {"enum": ["page", "feed_content", "feed_summary", "title", "none"]},
}
_COPY_REASON = {"copy_reason": {**_STR_OR_NULL,
                                "description": "why dedup called it a copy; null: an original"}}
_FEEDBACK = _obj({"relevant": {"type": "boolean"}, "by": {"type": "string"}, "at": _TIME})
_ALERT = {
    "id": {"type": "integer"}, "rule": {"type": "string"}, "item_id": {"type": "integer"},
    "story_id": _INT_OR_NULL, "feed": {"type": "string"}, "title": _STR_OR_NULL,
    "url": _STR_OR_NULL, "published_at": _TIME_OR_NULL, "created_at": _TIME,
    "sent_at": _TIME_OR_NULL, "query": {"type": "string"},
    "terms": {"type": "array", "items": {"type": "string"}}, "snippet": {"type": "string"},
    "backfilled": {"type": "boolean"},
    "feedback": {"oneOf": [{"type": "null"}, _ref("Feedback")]},
}
_FEED = {
    "id": {"type": "integer"}, "name": {"type": "string"}, "url": {"type": "string"},
    "fetch_url": _STR_OR_NULL, "title": _STR_OR_NULL, "enabled": {"type": "boolean"},
    "state": {"enum": ["disabled", "polling", "failing", "new", "ok"]},
    "interval_seconds": {"type": "integer"},
    "last_attempt_at": _TIME_OR_NULL, "last_success_at": _TIME_OR_NULL,
    "last_status": _INT_OR_NULL, "last_error": _STR_OR_NULL,
    "consecutive_failures": {"type": "integer"}, "parse_warning": _STR_OR_NULL,
    "next_poll_at": _TIME_OR_NULL, "items": {"type": "integer"},
    "items_per_day": {"type": "array", "items": {"type": "integer"},
                      "description": "items stored each day, oldest first, from first_day"},
    "first_day": {"type": "string", "format": "date"},
    "category": {**_STR_OR_NULL, "description": "the config's category of the feed"},
}
_HIT = {
    "story_id": _INT_OR_NULL, "item_id": {"type": "integer"}, "feed": {"type": "string"},
    "title": _STR_OR_NULL, "url": _STR_OR_NULL, "status": {"enum": ["new", "duplicate"]},
    "created_at": _TIME, "published_at": _TIME_OR_NULL, "score": {"type": "number"},
    "terms": {"type": "array", "items": {"type": "string"}}, "snippet": {"type": "string"},
    "story_matches": {"type": "integer", "description": "matching reports of its story"},
}


def _params(*names: str) -> list[dict[str, Any]]:
    known = {
        "limit": {"name": "limit", "in": "query", "required": False,
                  "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
        "cursor": {"name": "cursor", "in": "query", "required": False,
                   "schema": {"type": "string"}, "description": "a page's next_cursor"},
        "id": {"name": "id", "in": "path", "required": True,
               "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}},
        "status": {"name": "status", "in": "query", "required": False,
                   "schema": {"enum": ["new", "duplicate"]}},
        "feed_id": {"name": "feed_id", "in": "query", "required": False,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
        "rule": {"name": "rule", "in": "query", "required": False, "schema": {"type": "string"}},
        "q": {"name": "q", "in": "query", "required": True, "schema": {"type": "string",
              "minLength": 1}, "description": "the query language of rules and `monitor search`"},
    }
    return [known[n] for n in names]


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema)}}}


_ERRORS = {
    "400": {"description": "a bad parameter", "content": {"application/json": {
        "schema": _ref("Error")}}},
    "401": {"description": "sign-in needed ([web] auth)", "content": {"application/json": {
        "schema": _ref("Error")}}},
}
_NOT_FOUND = {"404": {"description": "no such id", "content": {"application/json": {
    "schema": _ref("Error")}}}}


def _get(summary: str, schema: str, params: tuple[str, ...], *, found: bool = False,
         op: str) -> dict[str, Any]:
    return {"get": {"operationId": op, "summary": summary, "parameters": _params(*params),
                    "responses": {"200": _ok(schema, summary), **_ERRORS,
                                  **(_NOT_FOUND if found else {})}}}


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "monitor", "version": __version__,
                 "description": "Stories, items, alerts, feeds and search of a monitor "
                                "database. Lists are newest first and paginated with cursors."},
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer",
                          "description": "[web] auth = \"env:NAME\": the token"},
                "password": {"type": "http", "scheme": "basic",
                             "description": "[web] auth = a password hash: any user name"},
            },
            "schemas": {
                "Error": _obj({"error": {"type": "string"}}),
                "Ref": _obj({"kind": {"enum": ["item", "seed"]}, "id": {"type": "integer"},
                             "url": _STR_OR_NULL, "name": _STR_OR_NULL}),
                "Story": _obj(_STORY),
                "StoryDetail": _obj({**_STORY, "reports": {"type": "array", "items": _ref(
                    "Report")}, "alerts": {"type": "array", "items": _ref("Alert")}}),
                "Report": _obj({**_ITEM, **_COPY_REASON}),
                "Item": _obj(_ITEM),
                "ItemDetail": _obj({
                    **_ITEM, **_COPY_REASON, "text": _STR_OR_NULL, "author": _STR_OR_NULL,
                    "site_name": _STR_OR_NULL, "final_url": _STR_OR_NULL,
                    "fetched_at": _TIME_OR_NULL, "page_status": _INT_OR_NULL,
                    "page_error": _STR_OR_NULL,
                    "alerts": {"type": "array", "items": _ref("Alert")},
                    "copies": {"type": "array", "items": {"type": "integer"}}}),
                "Feedback": _FEEDBACK,
                "FeedbackGiven": _obj({"alert_id": {"type": "integer"},
                                       "relevant": {"type": "boolean"},
                                       "by": {"type": "string"}, "at": _TIME}),
                "Alert": _obj(_ALERT),
                "Feed": _obj(_FEED),
                "Hit": _obj(_HIT),
                "StoryList": _list_of("Story"),
                "ItemList": _list_of("Item"),
                "AlertList": _list_of("Alert"),
                "FeedList": _list_of("Feed"),
                "SearchResult": _obj({"query": {"type": "string"}, "reads": {"type": "string"},
                                      "data": {"type": "array", "items": _ref("Hit")},
                                      "next_cursor": _STR_OR_NULL}),
            },
        },
        "security": [{}, {"token": []}, {"password": []}],
        "paths": {
            "/api/v1/stories": _get("Stories, last reported first", "StoryList",
                                    ("limit", "cursor"), op="listStories"),
            "/api/v1/stories/{id}": _get("A story with its reports and alerts", "StoryDetail",
                                         ("id",), found=True, op="getStory"),
            "/api/v1/items": _get("Items, newest first", "ItemList",
                                  ("limit", "cursor", "status", "feed_id"), op="listItems"),
            "/api/v1/items/{id}": _get("An item with its text, alerts and copies", "ItemDetail",
                                       ("id",), found=True, op="getItem"),
            "/api/v1/alerts": _get("Alerts, newest first, with reviewers' feedback",
                                   "AlertList", ("limit", "cursor", "rule"), op="listAlerts"),
            "/api/v1/alerts/{id}/feedback": {"post": {
                "operationId": "giveFeedback",
                "summary": "Mark an alert relevant or not (replaces an earlier verdict)",
                "parameters": _params("id"),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["relevant"],
                               "properties": {"relevant": {"type": "boolean"},
                                              "by": {"type": "string", "minLength": 1,
                                                     "maxLength": 80}},
                               "additionalProperties": False}}}},
                "responses": {"200": _ok("FeedbackGiven", "the verdict as stored"),
                              **_ERRORS, **_NOT_FOUND, "403": {
                                  "description": "not JSON, and without the page's CSRF "
                                                 "token, or from another site",
                                  "content": {"application/json": {
                                      "schema": _ref("Error")}}}}}},
            "/api/v1/feeds": _get("Feeds with their state and items per day", "FeedList",
                                  ("limit", "cursor"), op="listFeeds"),
            "/api/v1/search": _get("Stories matching a query, best first", "SearchResult",
                                   ("q", "limit", "cursor"), op="search"),
        },
    }
