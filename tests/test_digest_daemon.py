"""The daemon end to end: feeds on a local HTTP server, `monitor run` polling them,
alerts raised, and the digest that falls due mailed to a real SMTP server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import LocalServer
from helpers import SEEDS, Entry, cli, run_daemon, write_config
from mailserver import MailServer
from test_alerts import serve

from monitor import db, store
from monitor.config import load_settings
from monitor.digest.delivery import SCHEDULE_KEY


def test_the_daemon_mails_the_digest_that_falls_due(server: LocalServer, mail: MailServer,
                                                    tmp_path: Path) -> None:
    seed_title, _, seed_text = (SEEDS / "000_eb13740ee894f634.txt").read_text(
        encoding="utf-8").strip().partition("\n")
    seed_copy = Entry(title=seed_title.strip("# "), link=None, guid="wire-seed-copy",
                      content=seed_text)
    serve(server, "wire", ["talks", "turmoil"], (seed_copy,))
    serve(server, "desk", ["talks"])
    config = write_config(
        tmp_path / "m.toml", db_url=f"sqlite:///{tmp_path}/d.db",
        feeds=[{"name": "Wire", "url": server.url("/wire.rss")},
               {"name": "Desk", "url": server.url("/desk.rss")}],
        fetch={"max_redirects": 3}, smtp={"host": "127.0.0.1", "port": mail.port})
    assert cli(config, "db", "upgrade")[0] == 0
    # A slot a few seconds after the start, once the first polls are stored (the
    # daemon wakes for the slot stored in the database).
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    with db.session_factory(engine).begin() as s:
        store.set_meta(s, SCHEDULE_KEY, json.dumps({
            "schedule": settings.digest.schedule, "timezone": settings.digest.timezone,
            "next_at": (datetime.now(UTC) + timedelta(seconds=12)).isoformat()}))
    engine.dispose()

    code, err, _ = run_daemon(config, lambda: bool(mail.received), timeout=120)
    assert code == 0, err
    [received] = mail.received
    assert received.recipients == ["desk@example.org"]
    message = received.message
    assert message["Subject"] == "1 new story: Venezuela leadership (1)"
    text = str(message.get_body(("plain",)).get_content())
    assert "Caracas talks resume" in text
    assert "*Delcy Rodríguez*" in text
    assert "Also reported by: " in text  # the other feed's copy of the story
    assert seed_title.strip("# ") not in text  # a copy of a seed never alerts
    assert "digest 1 sent to desk@example.org" in err
    code, out = cli(config, "digest", "list", "--pending")
    assert (code, out) == (0, "no pending digests\n")
