"""Times in text output are in one zone, UTC, and say so: a digest slot kept in
``[digest] timezone`` is converted, not relabelled; and the next slot is shown whenever
the schedule is known, also before any daemon has set it (after ``run --once``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import LocalServer, Route
from helpers import Entry, cli, rss, write_config

from monitor import db, store
from monitor.digest.delivery import SCHEDULE_KEY


def next_slot_line(config: Path) -> str:
    code, out = cli(config, "status")
    assert code == 0, out
    line, = [ln for ln in out.splitlines() if ln.startswith("digests:")]
    return line


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_next_slot_is_shown_in_utc_and_known_before_a_daemon_sets_it(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    server.routes["/f.rss"] = Route(body=rss("F", [Entry("Story", None, guid="a",
                                                         content="A short story. " * 30)]))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": server.url("/f.rss")}],
                          digest={"schedule": "0 7 * * *", "timezone": "Europe/Berlin"})
    assert cli(config, "run", "--once")[0] == 0
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime.now(berlin)
    slot = now.replace(hour=7, minute=0, second=0, microsecond=0)
    if slot <= now:
        slot = (slot + timedelta(days=1)).replace(hour=7)
    expected = f"({slot.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
    line = next_slot_line(config)
    assert "next slot never" not in line and expected in line, (line, expected)

    # A slot a worker kept, in Berlin time, is shown converted to UTC.
    kept = datetime(2030, 1, 15, 7, 0, tzinfo=berlin)
    engine = db.make_engine(db_url)
    with db.session_factory(engine).begin() as s:
        store.set_meta(s, SCHEDULE_KEY, json.dumps({
            "schedule": "0 7 * * *", "timezone": "Europe/Berlin",
            "next_at": kept.isoformat()}))
    engine.dispose()
    line = next_slot_line(config)
    assert "(2030-01-15 06:00:00 UTC)" in line, line
    assert not re.search(r"07:00:00 UTC", line), line
