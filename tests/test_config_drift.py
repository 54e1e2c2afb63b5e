"""Workers sharing PostgreSQL with different configs (a rolling deploy): the shared feeds
and rules follow the newest config; a worker restarted with an older one while others
still run it writes nothing for everyone, says so, and `monitor status` shows the
drift; once the newer config's workers are gone, the older one is synced (a roll-back)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, cli, rss, write_config
from sqlalchemy import select

from monitor import db
from monitor.models import Rule


def enabled(config: Path) -> tuple[set[str], set[str]]:
    """The enabled feeds and rules in the shared tables (none before the schema is)."""
    code, out = cli(config, "feeds", "list", "--json")
    if code != 0:
        return set(), set()
    feeds = {json.loads(line)["name"] for line in out.splitlines()}
    code, out = cli(config, "config", "show")
    engine = db.make_engine(json.loads(out)["database"]["url"].replace("***", ""))
    try:
        with engine.connect() as conn:
            rules = set(conn.scalars(select(Rule.name).where(Rule.enabled.is_(True))))
    finally:
        engine.dispose()
    return feeds, rules


def status(config: Path) -> dict[str, object]:
    code, out = cli(config, "status", "--json")
    assert code == 0, out
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.timeout(180)
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_older_config_never_disables_what_the_newest_one_set(
        server: LocalServer, db_url: str, tmp_path: Path) -> None:
    for name in ("f1", "f2", "f3"):
        server.routes[f"/{name}.rss"] = Route(body=rss(name, []))

    def config(path: str, feeds: list[str], rule: str) -> Path:
        return write_config(tmp_path / path, db_url=db_url,
                            feeds=[{"name": f.upper(), "url": server.url(f"/{f}.rss")}
                                   for f in feeds],
                            rules=[{"name": rule, "query": rule, "recipients": ["d@example.org"]}],
                            daemon={"lease": "8s"})  # a heartbeat every 2 s

    old_a, old_c = config("a.toml", ["f1", "f2"], "R1"), config("c.toml", ["f1", "f2"], "R1")
    new = config("b.toml", ["f1", "f3"], "R2")
    a = Daemon(old_a, log=tmp_path / "a.log")
    c = Daemon(old_c, log=tmp_path / "c.log")
    b = a2 = None
    try:
        assert a.wait_for(lambda: enabled(old_a) == ({"F1", "F2"}, {"R1"}), 60), a.log()
        assert c.wait_for(lambda: "feeds, 1 rules" in c.log(), 60), c.log()
        # The new config arrives: its worker syncs it for everyone.
        b = Daemon(new, log=tmp_path / "b.log")
        assert b.wait_for(lambda: enabled(new) == ({"F1", "F3"}, {"R2"}), 60), b.log()
        drift = status(new)["config"]
        assert isinstance(drift, dict) and drift["drift"] is True
        assert drift["this_file"] == drift["newest"] and len(drift["older"]) == 2  # a and c

        # An old worker restarts (its image is still the old one) while another old one
        # runs: it writes nothing, says why, and the newest config's tables stay.
        a.stop()
        a2 = Daemon(old_a, log=tmp_path / "a2.log")
        assert a2.wait_for_log("config not written to the shared tables", 60), a2.log()
        assert enabled(new) == ({"F1", "F3"}, {"R2"})
        code, out = cli(new, "status")
        assert code == 0, out
        assert "config DRIFT: running workers run 2 different configs" in out, out
        assert out.count("(OLDER than the newest") == 2, out

        # The new config's worker goes (a roll-back): the old config is synced again.
        assert b.stop() == 0, b.log()
        b = None
        assert a2.wait_for(lambda: enabled(old_a) == ({"F1", "F2"}, {"R1"}), 60), a2.log()
        assert "is the newest running now: feeds and rules synced" in a2.log()
        assert status(old_a)["config"] == {"newest": status(old_a)["config"]["this_file"],  # type: ignore[index]
                                           "this_file": status(old_a)["config"]["this_file"],  # type: ignore[index]
                                           "drift": False, "older": []}
    finally:
        for d in (a, c, b, a2):
            if d is not None:
                assert d.stop() == 0, d.log()
