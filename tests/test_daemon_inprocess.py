"""The daemon run in this process, where a test can make a poll end in a way no real
component can on demand."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from conftest import LocalServer, Route
from helpers import Entry, cli, json_lines, rss, write_config

from monitor import db
from monitor.config import load_settings
from monitor.service import daemon, dispatch, startup


class Escaped(BaseException):
    """What no poll should raise: not an Exception, so no handler for errors takes it."""


def test_a_poll_ending_in_a_base_exception_gives_its_feed_back(
        server: LocalServer, tmp_path: Path, monkeypatch: Any) -> None:
    server.routes["/f.rss"] = Route(body=rss("F", [Entry("A story", None, guid="a",
                                                         content="A long story. " * 30)]))
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path / 'm.db'}",
                          feeds=[{"name": "F", "url": server.url("/f.rss")}],
                          daemon={"lease": "1h"})
    settings = load_settings(config)
    real = dispatch.poll_feed
    calls: list[float] = []

    async def poll_feed(ctx: Any, feed: Any) -> Any:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise Escaped
        return await real(ctx, feed)

    monkeypatch.setattr(dispatch, "poll_feed", poll_feed)
    engine = db.make_engine(settings.database.url)

    async def serve() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(settings, engine, once=False, stop=stop,
                                              install_signal_handlers=False, listen=""))
        deadline = time.monotonic() + 30
        while len(calls) < 2 and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 30)

    try:
        startup.prepare(settings, engine)
        asyncio.run(serve())
    finally:
        engine.dispose()
    # Polled again at once, not after the hour's lease (never, while the heartbeat ran).
    assert len(calls) == 2 and calls[1] - calls[0] < 10, calls
    assert [i["guid"] for i in json_lines(config, "items", "list")] == ["a"]
    assert cli(config, "status", "--json")[0] == 0
