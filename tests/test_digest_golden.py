"""Golden files: a config and stored alerts in, the expected digest emails out.

The inputs are ``tests/golden/digest/stories.json`` (stored as the pipeline would
store them, alerts raised by the config's rules) and the config written below; the
outputs are one ``.eml`` per recipient, plus its text and HTML parts decoded, so a
change to the templates shows as a readable diff. After an intended change, rewrite
them with ``MONITOR_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_digest_golden.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers import Story, store_stories, write_config

from monitor import db
from monitor.config import load_settings
from monitor.digest.delivery import build, recipients

GOLDEN = Path(__file__).resolve().parent / "golden" / "digest"
NOW = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)  # 07:00 in Caracas
STORED_AT = datetime(2026, 11, 23, 22, 15, tzinfo=UTC)
FEEDS = [
    {"name": "teleSUR English", "url": "https://www.telesurenglish.net/rss/"},
    {"name": "The Moscow Times", "url": "https://www.themoscowtimes.com/rss/news"},
    {"name": "RFE/RL", "url": "https://www.rferl.org/api/epiqq"},
]
RULES = [
    {"name": "Venezuela leadership", "query": 'Maduro OR "Delcy Rodriguez"',
     "recipients": ["desk@example.org"]},
    {"name": "Russia and Latin America", "query": "Russia AND (Venezuela OR Cuba OR Nicaragua)",
     "recipients": ["desk@example.org", "analyst@example.org"]},
]


def stories() -> list[Story]:
    return [Story(**s) for s in json.loads((GOLDEN / "stories.json").read_text(encoding="utf-8"))]


def render_all(tmp_path: Path) -> dict[str, bytes]:
    config = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path}/golden.db",
                          feeds=FEEDS, rules=RULES,
                          digest={"sender": "monitor@newsroom.example", "sender_name": "Monitor"})
    store_stories(config, stories(), STORED_AT)
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    try:
        with db.session_factory(engine)() as s:
            return {
                addr: build(s, settings, addr, rules, NOW,
                            f"<digest.golden-{addr.partition('@')[0]}@newsroom.example>")[1].as_bytes()
                for addr, rules in recipients(settings.rules).items()
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("recipient", ["desk@example.org", "analyst@example.org"])
def test_digest_matches_golden_files(tmp_path: Path, recipient: str) -> None:
    raw = render_all(tmp_path)[recipient]
    message = message_from_bytes(raw, policy=policy.default)
    parts = {
        ".eml": raw.decode("ascii"),
        ".txt": message.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
        ".html": message.get_body(("html",)).get_content(),  # type: ignore[union-attr]
    }
    name = recipient.partition("@")[0]
    for suffix, actual in parts.items():
        path = GOLDEN / f"{name}{suffix}"
        if os.environ.get("MONITOR_UPDATE_GOLDEN") == "1":
            path.write_bytes(actual.encode("utf-8"))
        expected = path.read_bytes().decode("utf-8")  # bytes: the .eml keeps its CRLFs
        assert actual == expected, f"{path.name} differs; see the module docstring"
