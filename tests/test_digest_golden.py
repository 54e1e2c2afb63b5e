"""Golden files: a config and stored alerts in, the expected digest emails out.

The inputs are ``tests/golden/digest/stories.json`` (stored as the pipeline would
store them, alerts raised by the config's rules, stories joined) and the config
written below; the outputs are one ``.eml`` per recipient, plus its text and HTML
parts decoded, so a change to the templates shows as a readable diff; then, once
those digests were composed and ``LATER`` stored, each recipient's next digest
(``*-later``): a story mailed before shows only its new reports. After an intended change, rewrite
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
from monitor.digest.delivery import build, compose, recipients

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


LATER = [  # stored after the first digests were composed
    Story(key="kremlin-telesur", feed="teleSUR English",
          title="Russia to respect Venezuelans' decision, says Kremlin",
          url="https://www.telesurenglish.net/news/russia-kremlin-respect-venezuelans-decision/",
          published_at="2026-11-24T13:00:00+00:00",
          text="Kremlin spokesman Dmitry Peskov said Russia would respect the choice of the "
               "Venezuelan people and continue working with the authorities in Caracas, "
               "after Nicolás Maduro was removed from office. Peskov said Moscow expected "
               "its agreements with Venezuela to be honored."),
    Story(key="oil", feed="The Moscow Times",
          title="Rosneft Halts Venezuelan Crude Swaps",
          url="https://www.themoscowtimes.com/2026/11/24/rosneft-halts-venezuelan-swaps-a91300",
          published_at="2026-11-24T15:45:00+00:00",
          text="Rosneft has halted crude swap deliveries with Venezuela's state oil company "
               "PDVSA pending talks with the new government, two sources said, a blow to "
               "Russia's largest remaining energy venture in Latin America."),
]
LATER_AT = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
NEXT = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


def render_all(tmp_path: Path) -> dict[str, bytes]:
    """Each recipient's first digest and, once those were composed and more was
    stored, their next one (``<name>-later``)."""
    config = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path}/golden.db",
                          feeds=FEEDS, rules=RULES,
                          digest={"sender": "monitor@newsroom.example", "sender_name": "Monitor"})
    store_stories(config, stories(), STORED_AT)
    settings = load_settings(config)
    engine = db.make_engine(settings.database.url)
    out: dict[str, bytes] = {}

    def build_each(now: datetime, suffix: str) -> None:
        with db.session_factory(engine)() as s:
            for addr, rules in recipients(settings.rules).items():
                name = addr.partition("@")[0] + suffix
                out[name] = build(s, settings, addr, rules, now,
                                  f"<digest.golden-{name}@newsroom.example>")[1].as_bytes()

    try:
        build_each(NOW, "")
        compose(db.session_factory(engine), settings, NOW, scheduled=False)
        store_stories(config, LATER, LATER_AT)
        build_each(NEXT, "-later")
        return out
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", ["desk", "analyst", "desk-later", "analyst-later"])
def test_digest_matches_golden_files(tmp_path: Path, name: str) -> None:
    raw = render_all(tmp_path)[name]
    message = message_from_bytes(raw, policy=policy.default)
    parts = {
        ".eml": raw.decode("ascii"),
        ".txt": message.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
        ".html": message.get_body(("html",)).get_content(),  # type: ignore[union-attr]
    }
    for suffix, actual in parts.items():
        path = GOLDEN / f"{name}{suffix}"
        if os.environ.get("MONITOR_UPDATE_GOLDEN") == "1":
            path.write_bytes(actual.encode("utf-8"))
        expected = path.read_bytes().decode("utf-8")  # bytes: the .eml keeps its CRLFs
        assert actual == expected, f"{path.name} differs; see the module docstring"
