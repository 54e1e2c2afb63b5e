"""``monitor db backup PATH``: a consistent copy of the SQLite database taken while the
daemon writes it, which a restored monitor runs on as if nothing happened; PostgreSQL
is pointed at pg_dump."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Daemon, Entry, cli, json_lines, rss, write_config


def stored(config: Path) -> int:
    code, out = cli(config, "items", "list", "--json")
    return len(out.splitlines()) if code == 0 else 0


def test_a_backup_taken_while_the_daemon_runs_restores_and_runs(
        server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = [Entry(f"Story {i}", None, guid=f"g{i}", content=f"Story number {i} here. " * 20)
               for i in range(5)]
    server.routes["/f.rss"] = Route(body=rss("F", entries))
    feeds = [{"name": "F", "url": server.url("/f.rss"), "interval": "1h"}]
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/live.db",
                          feeds=feeds)
    daemon = Daemon(config, log=tmp_path / "d.log")
    try:
        assert daemon.wait_for(lambda: stored(config) == 5, 60), daemon.log()
        code, out = cli(config, "db", "backup", str(tmp_path / "backups" / "monitor.db"))
        assert code == 0 and "backed up to" in out, out
    finally:
        assert daemon.stop() == 0, daemon.log()
    before = json_lines(config, "items", "list")
    capsys.readouterr()
    assert cli(config, "db", "backup", str(tmp_path / "backups" / "monitor.db"))[0] == 3
    assert "exists: a backup goes to a new file" in capsys.readouterr().err

    # Restored: the same items, and the feed's entries are known (nothing stored twice).
    restored = write_config(tmp_path / "r.toml",
                            db_url=f"sqlite:///{tmp_path}/backups/monitor.db", feeds=feeds)
    assert json_lines(restored, "items", "list") == before
    server.routes["/f.rss"] = Route(body=rss("F", [*entries, Entry(
        "Story 5", None, guid="g5", content="Story number 5 here. " * 20)]))
    code, out = cli(restored, "run", "--once")
    assert code == 0 and "5 already stored, 1 new" in out, out


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_is_pointed_at_pg_dump(db_url: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[])
    assert cli(config, "db", "upgrade")[0] == 0
    capsys.readouterr()
    assert cli(config, "db", "backup", str(tmp_path / "b.dump"))[0] == 3
    err = capsys.readouterr().err
    assert "pg_dump -Fc -f" in err and "check [database] url" not in err, err
