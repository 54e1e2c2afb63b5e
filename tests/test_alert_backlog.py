"""A feed with ``alert_backlog = false``: what its first poll finds (the stories it
already had when it was added) is stored and searchable but does not alert; what it
publishes afterwards does. Other feeds alert from their first poll. The flag travels
with the entry, so it holds whichever worker stores it."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Entry, article, cli, json_lines, rss, write_config


def entries(server: LocalServer, prefix: str, ids: list[int]) -> bytes:
    now = format_datetime(datetime.now(UTC), usegmt=True)
    return rss(prefix, [Entry(f"Maduro story {i}", server.url(f"/{prefix}/{i}"),
                              guid=f"{prefix}{i}", published=now) for i in ids])


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_new_feeds_backlog_does_not_alert_when_asked(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    for prefix, base in (("quiet", 0), ("loud", 100)):
        for i in range(4):
            server.routes[f"/{prefix}/{i}"] = Route(
                body=article(base + i).replace(b"<h1>", b"<h1>Maduro "))
    server.routes["/quiet.rss"] = Route(body=entries(server, "quiet", [0, 1, 2]))
    server.routes["/loud.rss"] = Route(body=entries(server, "loud", [0, 1]))
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[
        {"name": "Quiet", "url": server.url("/quiet.rss"), "alert_backlog": False},
        {"name": "Loud", "url": server.url("/loud.rss")}],
        rules=[{"name": "Maduro", "query": "Maduro", "recipients": ["desk@example.org"]}])
    assert cli(config, "run", "--once")[0] == 0

    def alerted() -> set[str]:
        guid = {i["id"]: i["guid"] for i in json_lines(config, "items", "list")}
        return {guid[a["item_id"]] for a in json_lines(config, "alerts", "list")}

    assert len(json_lines(config, "items", "list")) == 5  # all stored
    assert alerted() == {"loud0", "loud1"}  # the quiet feed's backlog did not alert
    # What the quiet feed publishes after its first poll alerts.
    server.routes["/quiet.rss"] = Route(body=entries(server, "quiet", [0, 1, 2, 3]))
    assert cli(config, "run", "--once")[0] == 0
    assert alerted() == {"loud0", "loud1", "quiet3"}
    # rules test says which matches would not alert, and why.
    tested = {(m["feed"], m["title"]): m
              for m in json_lines(config, "rules", "test", "Maduro", "--since", "all")}
    muted = (False, "found by its feed's first poll (the feed has alert_backlog = false)")
    assert {k: (m["would_alert"], m["why_not"]) for k, m in tested.items()} == {
        **{("Quiet", f"Maduro story {i}"): muted for i in range(3)},
        ("Quiet", "Maduro story 3"): (True, None),
        **{("Loud", f"Maduro story {i}"): (True, None) for i in range(2)}}
    code, out = cli(config, "rules", "test", "Maduro", "--since", "all")
    assert code == 0
    assert out.count("would alert: no, found by its feed's first poll") == 3, out
