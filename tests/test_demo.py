"""``make demo`` as a new user runs it (shorter): a local site and mail server, the
daemon, a digest; its folder holds a database with stories, copies and alerts, the
digest as .eml and .html, and a summary that says what to try next."""

from __future__ import annotations

import subprocess
from email import message_from_bytes, policy
from pathlib import Path

from helpers import json_lines

REPO = Path(__file__).resolve().parents[1]


def test_make_demo(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(["make", "-s", "demo", f"DEMO_OUT={out}", "DEMO_SECONDS=20"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    config = out / "monitor.toml"
    items = json_lines(config, "items", "list")
    methods = {i["dedup_method"] for i in items if i["status"] == "duplicate"}
    assert {"exact", "near"} <= methods, items
    seeded = [i for i in items if (i["duplicate_of"] or {}).get("kind") == "seed"]
    assert [i["feed"] for i in seeded] == ["Kremlin Watch"]
    stories = json_lines(config, "stories", "list")
    told = [s for s in stories if len(s["outlets"]) > 1]
    assert any({"Tech Desk", "Startup Wire"} == set(s["outlets"]) for s in told), told
    alerts = json_lines(config, "alerts", "list")
    assert {a["rule"] for a in alerts} >= {"WeWork", "Paris heist", "Earthquakes"}
    digest = message_from_bytes((out / "digest.eml").read_bytes(), policy=policy.default)
    assert digest["To"] == "desk@demo.example"
    assert "WeWork" in (out / "digest.html").read_text()
    # The chat room was told once per story of the rules that notify it.
    chat = (out / "chat.md").read_text()
    assert "New story:" in chat and "WeWork" in chat, chat
    told_chat = {a["story_id"] for a in alerts if a["rule"] in ("WeWork", "Paris heist")}
    [room] = json_lines(config, "channels", "list")
    assert (room["delivered"], room["dead"]) == (len(told_chat), 0), room
    summary = (out / "SUMMARY.md").read_text()
    for hint in ("stories list", "search", "web --listen", "channels list"):
        assert hint in summary
    assert summary in done.stdout
