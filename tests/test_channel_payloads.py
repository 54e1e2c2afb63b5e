"""What each kind of channel is sent: golden files for one notice (hostile text, an
article without a link, more articles than a message lists), the webhook signature as a
receiver checks it, and the [[channels]] config: what it refuses and what it hides.

Regenerate the golden files after an intended change with
``MONITOR_UPDATE_GOLDEN=1 pytest tests/test_channel_payloads.py`` and read the diff."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import FIXTURES, cli, write_config

from monitor.channels.payloads import Notice, Report, build, idempotency_key
from monitor.config import load_settings
from monitor.config.channels import ChannelSettings
from monitor.errors import ConfigError

GOLDEN = FIXTURES / "channels"
WHEN = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def notice(follow_up: bool = False) -> Notice:
    reports = (
        Report(11, "Venezuela", 5, "Russia <b>backs</b> Caracas & calls for *talks* | [wire]",
               "https://wire.example.org/world/russia-caracas?id=7&lang=en", "Wire", "Wires",
               datetime(2026, 12, 7, 8, 5, tzinfo=UTC),
               "The Kremlin said on Tuesday it backs dialogue in Caracas.", ("kremlin",)),
        Report(12, "Kremlin", 5, "Russia <b>backs</b> Caracas & calls for *talks* | [wire]",
               "https://wire.example.org/world/russia-caracas?id=7&lang=en", "Wire", "Wires",
               datetime(2026, 12, 7, 8, 5, tzinfo=UTC), "The Kremlin said…", ("caracas",)),
        Report(13, "Venezuela", 6, "Moscow\nsays\x00 little", None, "Gazette", None, None,
               "", ()),
        Report(14, "Venezuela", 7, "A third report", "javascript:alert(1)", "Daily", None,
               datetime(2026, 12, 7, 9, 0, tzinfo=UTC), "Third.", ()),
    )
    return Notice("desk", idempotency_key("desk", 11), 42, "Russia backs Caracas", follow_up,
                  reports, WHEN)


CHANNELS = {
    "webhook": ChannelSettings(name="desk", kind="webhook", url="https://hooks.example.org/in",
                               headers=(("X-Team", "news"),), secret_env="S",
                               secret="s3cret-key", max_alerts=2),
    "slack": ChannelSettings(name="desk", kind="slack",
                             url="https://hooks.slack.com/services/T0/B0/XYZ", max_alerts=2),
    "mattermost": ChannelSettings(name="desk", kind="mattermost",
                                  url="https://chat.example.org/hooks/abc", max_alerts=2),
    "matrix": ChannelSettings(name="desk", kind="matrix", url="https://matrix.example.org",
                              room="!room42:example.org", token_env="T", token="tok",
                              max_alerts=2),
    "ntfy": ChannelSettings(name="desk", kind="ntfy", url="https://ntfy.example.org",
                            topic="newsdesk", max_alerts=2),
}


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_payload_matches_its_golden_file(kind: str) -> None:
    request = build(CHANNELS[kind], notice(), timestamp=1796635800)
    got = {"method": request.method, "url": request.url, "headers": dict(request.headers),
           "body": json.loads(request.body)}
    path = GOLDEN / f"{kind}.json"
    if os.environ.get("MONITOR_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert got == json.loads(path.read_text(encoding="utf-8"))


def test_every_request_carries_the_messages_idempotency_key() -> None:
    for kind, channel in CHANNELS.items():
        request = build(channel, notice(), timestamp=1)
        assert dict(request.headers)["Idempotency-Key"] == idempotency_key("desk", 11), kind
    # Matrix deduplicates on the transaction id: it is the key.
    assert build(CHANNELS["matrix"], notice(), 1).url.endswith("/" + idempotency_key("desk", 11))
    assert idempotency_key("desk", 11) != idempotency_key("desk", 12) != \
        idempotency_key("other", 11)


def test_a_receiver_verifies_the_webhook_signature() -> None:
    request = build(CHANNELS["webhook"], notice(), timestamp=1796635800)
    headers = dict(request.headers)
    expected = hmac.new(b"s3cret-key", b"1796635800." + request.body, hashlib.sha256).hexdigest()
    assert headers["X-Monitor-Signature"] == f"sha256={expected}"
    assert headers["X-Monitor-Timestamp"] == "1796635800"
    tampered = request.body.replace(b"Caracas", b"Havana")
    assert headers["X-Monitor-Signature"] != "sha256=" + hmac.new(
        b"s3cret-key", b"1796635800." + tampered, hashlib.sha256).hexdigest()
    unsigned = build(ChannelSettings(name="desk", kind="webhook", url="https://h.example"),
                     notice(), 1)
    assert "X-Monitor-Signature" not in dict(unsigned.headers)


def test_articles_are_listed_once_with_every_rule_and_hostile_text_is_defused() -> None:
    body = json.loads(build(CHANNELS["webhook"], notice(), 1).body)
    first, second = body["articles"]
    assert first["rules"] == ["Venezuela", "Kremlin"] and first["alert_ids"] == [11, 12]
    assert second["title"] == "Moscow says little" and second["url"] is None
    assert body["more"] == 1 and body["headline"] == "New story: Russia backs Caracas"
    slack = json.loads(build(CHANNELS["slack"], notice(), 1).body)
    text = json.dumps(slack)
    assert "<b>" not in text and "&lt;b&gt;" in text  # no Slack markup from a title
    unlisted = ChannelSettings(name="d", kind="webhook", url="https://h.example")  # lists all
    assert "javascript:" not in build(unlisted, notice(), 1).body.decode()
    follow = json.loads(build(CHANNELS["webhook"], notice(follow_up=True), 1).body)
    assert follow["headline"].startswith("More on: ") and follow["follow_up"] is True


# --- config ------------------------------------------------------------------------------

def _config(tmp_path: Path, channels: list[dict[str, object]],
            notify: list[str] | None = None, recipients: list[str] | None = None) -> Path:
    rule: dict[str, object] = {"name": "Kremlin", "query": "kremlin",
                               "recipients": ["desk@example.org"] if recipients is None
                               else recipients}
    if notify is not None:
        rule["notify"] = notify
    return write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path}/m.db",
                        feeds=[], rules=[rule], channels=channels)


@pytest.mark.parametrize(("channels", "notify", "key", "reason"), [
    ([], ["slack"], "rules[0].notify[0]", "no [[channels]] named 'slack'"),
    ([{"name": "a", "kind": "teams", "url": "https://x.example"}], [], "channels[0].kind",
     "must be one of: webhook, slack"),
    ([{"name": "a", "kind": "slack"}], [], "channels[0].url", "is required"),
    ([{"name": "a", "kind": "slack", "url": "ftp://x.example/h"}], [], "channels[0].url",
     "must be an http(s) URL"),
    ([{"name": "a", "kind": "slack", "url": "https://x.example", "secret_env": "S"}], [],
     "channels[0].secret_env", "is not a key of a slack channel"),
    ([{"name": "a", "kind": "matrix", "url": "https://m.example", "token_env": "T",
       "room": "#news:m.example"}], [], "channels[0].room", "must be a Matrix room id"),
    ([{"name": "a", "kind": "matrix", "url": "https://m.example", "room": "!r:m.example"}],
     [], "channels[0].token_env", "is required"),
    ([{"name": "a", "kind": "webhook", "url": "https://x.example",
       "headers": {"Idempotency-Key": "1"}}], [], "channels[0].headers.Idempotency-Key",
     "is set by monitor itself"),
    ([{"name": "a", "kind": "ntfy", "url": "https://n.example", "topic": "a b"}], [],
     "channels[0].topic", "letters, digits"),
    ([{"name": "a", "kind": "slack", "url": "https://x.example"},
      {"name": "a", "kind": "slack", "url": "https://y.example"}], [], "channels[1].name",
     "duplicate channel name"),
    ([{"name": "a", "kind": "slack", "url": "https://x.example", "retry": "10m",
       "retry_max": "1m"}], [], "channels[0].retry_max", "must be at least retry"),
    ([{"name": "a", "kind": "slack", "url": "https://x.example", "colour": "red"}], [],
     "channels[0].colour", "unknown key"),
])
def test_a_bad_channel_is_refused_naming_the_key(tmp_path: Path, channels: list[dict[str, object]],
                                                 notify: list[str], key: str,
                                                 reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_config(tmp_path, channels, notify), environ={})
    assert info.value.key == key and reason in info.value.reason, info.value


def test_a_rule_may_notify_without_recipients_but_not_neither(tmp_path: Path) -> None:
    slack = [{"name": "desk", "kind": "slack", "url": "https://hooks.slack.com/x"}]
    settings = load_settings(_config(tmp_path, slack, ["desk"], recipients=[]), environ={})
    assert settings.rules[0].notify == ("desk",) and settings.rules[0].recipients == ()
    with pytest.raises(ConfigError) as info:
        load_settings(_config(tmp_path, slack, [], recipients=[]), environ={})
    assert info.value.key == "rules[0].recipients"


def test_secrets_never_show_in_config_show_or_repr(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESK_HOOK", "https://hooks.slack.com/services/T0/B0/SECRETPATH")
    monkeypatch.setenv("HOOK_KEY", "hmac-SECRET-value")
    monkeypatch.setenv("AUTH", "Bearer SECRET-header")
    config = _config(tmp_path, [
        {"name": "desk", "kind": "slack", "url_env": "DESK_HOOK"},
        {"name": "hook", "kind": "webhook", "url": "https://in.example.org/p/SECRETPATH2",
         "secret_env": "HOOK_KEY",
         "headers": {"Authorization": "env:AUTH", "X-Plain": "SECRET-plain"}},
    ], ["desk", "hook"])
    code, out = cli(config, "config", "show")
    assert code == 0, out
    assert "SECRET" not in out, out
    shown = json.loads(out)["channels"]
    assert shown[0]["url"] == "https://hooks.slack.com/…"
    assert shown[1]["headers"] == {"Authorization": "(hidden)", "X-Plain": "(hidden)"}
    assert shown[1]["secret"] == "(hidden)"
    settings = load_settings(config)
    assert "SECRET" not in repr(settings.channels)
    assert dict(settings.channels[1].headers)["Authorization"] == "Bearer SECRET-header"


def test_run_refuses_to_start_when_a_channels_secret_is_unset(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    monkeypatch.delenv("MATRIX_TOKEN", raising=False)
    config = _config(tmp_path, [{"name": "room", "kind": "matrix", "url": "https://m.example",
                                 "room": "!r:m.example", "token_env": "MATRIX_TOKEN"}], ["room"])
    code, out = cli(config, "run", "--once")
    assert code == 2
    assert cli(config, "db", "upgrade")[0] == 0
    code, out = cli(config, "channels", "list")  # reading still works, and says why
    assert code == 0 and "NOT READY: $MATRIX_TOKEN unset" in out, out
