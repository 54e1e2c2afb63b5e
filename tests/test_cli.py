"""The CLI contract: commands, JSON fields, exit codes, and the daemon's run loop."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Entry, Story, rss, run_daemon, store_stories, write_config

from monitor.cli import EXIT_CONFIG, EXIT_OK, EXIT_STORE, main

FEED_FIELDS = {"name", "url", "enabled", "last_attempt_at", "last_success_at", "last_status",
               "last_error", "consecutive_failures"}
ITEM_FIELDS = {"id", "url", "canonical_url", "title", "feed", "published_at", "fetched_at",
               "language", "text_source", "status", "duplicate_of"}


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_json_listings_carry_the_contract_fields(server: LocalServer, db_url: str,
                                                 tmp_path: Path) -> None:
    server.routes["/f.rss"] = Route(body=rss("F", [
        Entry("An entry", None, guid="e1", content="Entry text long enough to keep. " * 12)]))
    config = write_config(tmp_path / "m.toml", db_url=db_url,
                          feeds=[{"name": "F", "url": server.url("/f.rss")},
                                 {"name": "Off", "url": server.url("/off.rss"), "enabled": False}])
    assert cli("--config", str(config), "run", "--once")[0] == EXIT_OK

    code, out = cli("--config", str(config), "feeds", "list", "--json", "--all")
    assert code == EXIT_OK
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in rows] == ["F", "Off"]
    for r in rows:
        assert r.keys() >= FEED_FIELDS
    assert rows[1]["enabled"] is False and rows[1]["last_attempt_at"] is None  # never polled
    assert server.hits("/off.rss") == []

    code, out = cli("--config", str(config), "items", "list", "--json")
    (item,) = [json.loads(line) for line in out.splitlines()]
    assert item.keys() >= ITEM_FIELDS and "text" not in item
    assert item["status"] == "new" and item["duplicate_of"] is None
    code, out = cli("--config", str(config), "items", "list", "--json", "--text")
    assert json.loads(out)["text"].startswith("Entry text long enough")

    code, out = cli("--config", str(config), "items", "list")  # human-readable form
    assert code == EXIT_OK and "An entry" in out


def test_seeds_load_and_db_upgrade_are_idempotent(db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[])
    code, out = cli("--config", str(config), "db", "upgrade")
    assert code == EXIT_OK and "upgraded from empty" in out
    code, out = cli("--config", str(config), "db", "upgrade")
    assert code == EXIT_OK and "already at" in out
    code, out = cli("--config", str(config), "seeds", "load")
    assert code == EXIT_OK and "5 added, 0 updated, 0 unchanged" in out
    code, out = cli("--config", str(config), "seeds", "load")
    assert code == EXIT_OK and "0 added, 0 updated, 5 unchanged" in out


def test_a_current_schema_is_checked_without_loading_alembic(db_url: str, tmp_path: Path) -> None:
    """Every start checks the schema; when it is current, Alembic (~0.15 s to import and
    load every migration) is not loaded: the head comes from the migration files'
    revision lines, and must be the one Alembic finds."""
    from alembic.script import ScriptDirectory

    from monitor import db

    assert db._plain_head() == ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    config = write_config(tmp_path / "m.toml", db_url=db_url, feeds=[])
    assert cli("--config", str(config), "db", "upgrade")[0] == EXIT_OK
    probe = ("import sys; from monitor import db; e = db.make_engine(sys.argv[1]); "
             "print(db.upgrade(e)); print('alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, db_url], capture_output=True, text=True,
                          check=True)
    head = db._plain_head()
    assert done.stdout.split("\n")[:2] == [f"('{head}', '{head}')", "False"], done.stdout


def test_changed_seed_file_is_refreshed(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("# Title A\n\nFirst version of the text.\n", encoding="utf-8")
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/m.db", feeds=[],
                          seeds=seeds)
    assert "1 added" in cli("--config", str(config), "seeds", "load")[1]
    (seeds / "a.txt").write_text("# Title A\n\nSecond version.\n", encoding="utf-8")
    assert "1 updated" in cli("--config", str(config), "seeds", "load")[1]


def test_bad_config_is_rejected_before_anything_runs(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "never.db"
    config = tmp_path / "bad.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n\n'
        '[[feeds]]\nname = "A"\nurl = "https://a.example/rss"\n\n'
        '[[feeds]]\nname = "B"\nurl = "https://a.example/rss"\n', encoding="utf-8")
    code, _ = cli("--config", str(config), "run", "--once")
    assert code == EXIT_CONFIG
    message = " ".join(r.getMessage() for r in caplog.records)
    assert str(config) in message and "feeds[1].url" in message and "duplicate" in message
    assert not db.exists()  # nothing ran


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path / "env.toml", db_url=f"sqlite:///{tmp_path}/e.db", feeds=[])
    monkeypatch.setenv("MONITOR_CONFIG", str(config))
    monkeypatch.setenv("MONITOR_DATABASE_URL", "postgresql://u:s3cret@127.0.0.1:1/x")
    monkeypatch.setenv("MONITOR_SMTP_PASSWORD", "m4il-secret")
    code, out = cli("config", "show")
    assert code == EXIT_OK
    shown = json.loads(out)
    assert shown["config_file"] == str(config)
    assert shown["database"]["from_env"] is True
    assert "s3cret" not in out and "m4il-secret" not in out
    assert shown["smtp"]["password"] == "(hidden)"
    assert shown["rules"] == [{"name": "Venezuela leadership", "query": 'Maduro OR "Delcy Rodriguez"',
                               "reads": 'maduro OR "delcy rodriguez"',
                               "recipients": ["desk@example.org"], "backfill": None,
                               "notify": []}]


def test_unreachable_database_exits_non_zero(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path / "m.toml", feeds=[],
                          db_url="postgresql://postgres:Zq7-secret@127.0.0.1:1/nothing")
    code, _ = cli("--config", str(config), "run", "--once")
    assert code == EXIT_STORE
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "cannot connect" in message and "Zq7-secret" not in message
    assert cli("--config", str(config), "feeds", "list")[0] == EXIT_STORE


def test_listing_before_any_upgrade_says_what_to_do(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/new.db", feeds=[])
    assert cli("--config", str(config), "items", "list")[0] == EXIT_STORE
    assert "monitor db upgrade" in caplog.text


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "monitor", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0
    for command in ("run", "seeds", "db", "feeds", "items", "config"):
        assert command in proc.stdout


def test_daemon_polls_on_interval_and_stops_on_sigterm(server: LocalServer, tmp_path: Path) -> None:
    server.routes["/a.rss"] = Route(body=rss("A", []), etag='"a"')
    server.routes["/b.rss"] = Route(status=500)
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db", feeds=[
        {"name": "A", "url": server.url("/a.rss"), "interval": "30s"},
        {"name": "B", "url": server.url("/b.rss"), "interval": "30s"},
    ])
    # linger: still running a second after the first round, as a daemon is
    code, err, running = run_daemon(config, lambda: len(server.hits()) >= 2, timeout=30, linger=1.0)
    assert running
    assert code == 0, err
    assert {h.path for h in server.hits()} == {"/a.rss", "/b.rss"}
    assert len(server.hits()) == 2  # each once: the next poll is 30 s away
    assert f"feed 'A' <{server.url('/a.rss')}>: polling" in err
    assert f"feed 'B' <{server.url('/b.rss')}>: HTTP 500" in err
    assert "received SIGTERM" in err and "stopped" in err


def test_a_pipe_closed_by_the_reader_ends_the_command_quietly(tmp_path: Path) -> None:
    config = write_config(tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
                          feeds=[{"name": "F", "url": "http://127.0.0.1:9/f.rss"}])
    now = datetime.now(UTC)
    store_stories(config, [Story(f"s{i}", "F", f"Story {i}", f"http://example.org/{i}",
                                 f"Paragraph {i} of a long enough text. " * 60)
                           for i in range(150)], now)  # ~300 KB of --text: past any pipe buffer
    for args in (["items", "list", "--text"], ["items", "list", "--json", "--text"]):
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(config), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline()  # `| head -1`: one line read, then the pipe closed
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(60) == 0, err
        assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err, err
