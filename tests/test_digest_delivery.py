"""Digests end to end on SQLite and PostgreSQL, delivered to a real SMTP server
(aiosmtpd on 127.0.0.1) that receives and parses them: content, grouping, headers,
escaping, exactly-once sending, retries after refusals and dropped connections."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import WORDS, Story, cli, json_lines, store_stories, write_config
from mailserver import MailServer
from sqlalchemy.exc import OperationalError

from monitor import db, store
from monitor.config import Settings, load_settings
from monitor.digest import delivery
from monitor.digest.mailer import SmtpMailer
from monitor.errors import StoreError

FEEDS = [
    {"name": "teleSUR English", "url": "https://www.telesurenglish.net/rss/"},
    {"name": "The Moscow Times", "url": "https://www.themoscowtimes.com/rss/news"},
    {"name": "RFE/RL", "url": "https://www.rferl.org/api/epiqq"},
]
LEADERS = {"name": "Venezuela leadership", "query": 'Maduro OR "Delcy Rodriguez"',
           "recipients": ["desk@example.org"]}
RUSSIA = {"name": "Russia and Latin America", "query": "Russia AND (Venezuela OR Cuba)",
          "recipients": ["desk@example.org", "analyst@example.org"]}
STORED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

FILLER = (" Officials said they were following the situation closely and expected further "
          "statements later in the week.")
DELEGATION = Story("delegation", "teleSUR English", "Delcy Rodríguez receives Russian delegation",
                   "https://www.telesurenglish.net/news/delegation/",
                   "Acting President Delcy Rodríguez received a Russian delegation in Caracas, "
                   "and Russia pledged support for Venezuela. Both sides discussed energy "
                   "cooperation, debt payments and the security of oil investments.",
                   published_at="2026-11-22T14:05:00+00:00")
DELEGATION_COPY = Story("delegation-copy", "RFE/RL", "Russian diplomats in Caracas",
                        "https://www.rferl.org/a/delegation.html", DELEGATION.text,
                        published_at="2026-11-22T16:00:00+00:00", copy_of="delegation")
KREMLIN = Story("kremlin", "The Moscow Times", "Kremlin on Maduro",
                "https://www.themoscowtimes.com/kremlin", "The Kremlin said Maduro's removal was "
                "an internal matter of Venezuela, and Russia would respect it. Spokesman Dmitry "
                "Peskov told journalists Moscow had spoken to the new authorities.",
                published_at="2026-11-23T09:30:00+00:00")
HAVANA = Story("havana", "RFE/RL", "Russian tanker docks in Havana",
               "https://www.rferl.org/a/havana.html",
               "A Russian tanker docked in Havana, and Russia said more fuel would reach Cuba. "
               "Blackouts have hit the island for months since shipments dried up.",
               published_at="2026-11-21T18:00:00+00:00")
LATER = Story("later", "teleSUR English", "Maduro's ministers questioned",
              "https://www.telesurenglish.net/news/ministers/",
              "Former ministers of Nicolás Maduro appeared before prosecutors. They were asked "
              "about contracts signed while in office; their lawyers said they came of their "
              "own accord.",
              published_at="2026-11-24T10:00:00+00:00")


def setup(tmp_path: Path, db_url: str, mail: MailServer, stories: list[Story],
          **config: Any) -> Path:
    smtp = {"host": "127.0.0.1", "port": mail.port, "timeout": "5s", **config.pop("smtp", {})}
    path = write_config(tmp_path / "monitor.toml", db_url=db_url, feeds=FEEDS,
                        rules=config.pop("rules", [LEADERS, RUSSIA]), smtp=smtp, **config)
    store_stories(path, stories, STORED_AT)
    return path


def digests(config: Path, *extra: str) -> list[dict[str, Any]]:
    return json_lines(config, "digest", "list", *extra)


def by_recipient(mail: MailServer) -> dict[str, Any]:
    out = {}
    for received in mail.received:
        assert len(received.recipients) == 1
        out[received.recipients[0]] = received.message
    return out


def html_of(message: Any) -> str:
    return str(message.get_body(("html",)).get_content()).replace("\r\n", "\n")


def text_of(message: Any) -> str:
    return str(message.get_body(("plain",)).get_content()).replace("\r\n", "\n")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def next_slot(sessions: Any, settings: Settings) -> datetime | None:
    with sessions() as s:
        return delivery.next_digest_at(s, settings)


def sessions_of(settings: Settings) -> Any:
    return db.session_factory(db.make_engine(settings.database.url))


# --- content, grouping, headers ----------------------------------------------------------------

def test_one_digest_per_recipient_grouped_by_rule(tmp_path: Path, db_url: str,
                                                   mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [DELEGATION, DELEGATION_COPY, KREMLIN, HAVANA])
    code, out = cli(config, "digest", "send", "--now")
    assert code == 0, out
    assert "sent 2 digests" in out
    got = by_recipient(mail)
    assert set(got) == {"desk@example.org", "analyst@example.org"}
    assert {r.sender for r in mail.received} == {"monitor@example.org"}

    desk = got["desk@example.org"]
    # Story first: each story once, under the first of the recipient's rules it matched.
    assert desk["Subject"] == ("3 new stories: Venezuela leadership (2), "
                               "Russia and Latin America (1)")
    assert desk["From"] == "monitor <monitor@example.org>"
    assert desk["To"] == "desk@example.org"
    assert desk["List-Id"] == '"monitor digest" <digest.example.org>'
    assert desk["Auto-Submitted"] == "auto-generated"
    assert re.fullmatch(r"<digest\.[0-9a-f]{24}@example\.org>", desk["Message-ID"])
    assert desk["Date"].datetime.utcoffset() == timedelta(hours=-4)  # the digest's zone
    assert desk.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in desk.iter_parts()] == ["text/plain", "text/html"]

    text = text_of(desk)
    # Rules in config order; in each, the latest reported story first.
    assert text.index("== Venezuela leadership (2) ==") < text.index(
        "== Russia and Latin America (1) ==")
    leaders, russia = text.split("== Russia and Latin America")
    assert leaders.index("Kremlin on Maduro") < leaders.index("Delcy Rodríguez receives")
    assert leaders.count("Also matches: Russia and Latin America") == 2
    assert "Kremlin" not in russia and "Delcy" not in russia and "tanker" in russia
    assert ("2 reports from 2 outlets: first 22 Nov 2026, 10:05 (teleSUR English), "
            "latest 22 Nov 2026, 12:00 (RFE/RL)") in leaders
    # Published times in America/Caracas: 14:05Z is 10:05 there.
    assert "teleSUR English · 22 Nov 2026, 10:05" in text
    assert "Also reported by: RFE/RL <https://www.rferl.org/a/delegation.html>" in text

    html = html_of(desk)
    assert '<a href="https://www.themoscowtimes.com/kremlin"' in html
    assert re.search(r"<strong[^>]*>Delcy Rodríguez</strong> received", html)
    assert re.search(r"<strong[^>]*>Maduro</strong>", html)
    assert 'Also reported by: <a href="https://www.rferl.org/a/delegation.html"' in html
    assert "<style" not in html  # inline CSS only

    analyst = got["analyst@example.org"]
    assert analyst["Subject"] == "3 new stories: Russia and Latin America (3)"
    assert "Venezuela leadership" not in text_of(analyst)
    russia = text_of(analyst)
    assert russia.index("Kremlin") < russia.index("Delcy") < russia.index("tanker")
    assert analyst["Message-ID"] != desk["Message-ID"]

    # The alerts are sent now, and the digests recorded as sent.
    assert all(a["sent_at"] for a in json_lines(config, "alerts", "list"))
    rows = digests(config)
    assert sorted(d["recipient"] for d in rows) == ["analyst@example.org", "desk@example.org"]
    assert all(d["sent_at"] and d["attempts"] == 1 and d["last_error"] is None for d in rows)
    assert {d["message_id"] for d in rows} == {desk["Message-ID"], analyst["Message-ID"]}


def test_a_second_send_sends_nothing_new(tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [DELEGATION, KREMLIN])
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert len(mail.received) == 2
    code, out = cli(config, "digest", "send", "--now")
    assert code == 0
    assert "composed 0 digests" in out and "sent 0 digests" in out
    assert len(mail.received) == 2

    # Something new: only that goes out, to the rule's recipient only.
    store_stories(config, [LATER], STORED_AT + timedelta(days=1))
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert len(mail.received) == 3
    third = mail.received[2].message
    assert mail.received[2].recipients == ["desk@example.org"]
    assert third["Subject"] == "1 new story: Venezuela leadership (1)"
    assert "Maduro's ministers questioned" in text_of(third)
    assert "Kremlin" not in text_of(third)


def test_nothing_new_sends_nothing_unless_configured(tmp_path: Path, db_url: str,
                                                      mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [LATER])  # Venezuela leadership only: desk
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert [r.recipients for r in mail.received] == [["desk@example.org"]]

    config = setup(tmp_path, db_url, mail, [], digest={"send_empty": True})
    assert cli(config, "digest", "send", "--now")[0] == 0
    empty = by_recipient(MailServer(received=mail.received[1:]))
    assert set(empty) == {"desk@example.org", "analyst@example.org"}
    assert empty["analyst@example.org"]["Subject"] == "No new stories"
    assert "Nothing new matched your rules" in text_of(empty["analyst@example.org"])


def test_an_empty_digest_is_queued_once_while_the_server_is_down(
        tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [], digest={"send_empty": True})
    mail.mode = "refuse"
    for _ in range(3):
        assert cli(config, "digest", "send", "--now")[0] == 5
    pending = digests(config, "--pending")
    assert sorted(d["recipient"] for d in pending) == ["analyst@example.org", "desk@example.org"]
    mail.mode = "accept"
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert sorted(r.recipients[0] for r in mail.received) == ["analyst@example.org",
                                                              "desk@example.org"]
    assert digests(config, "--pending") == []


def test_a_refused_recipient_fails_the_digest_and_its_alerts_go_to_the_next_once(
        tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [KREMLIN, LATER], rules=[LEADERS])
    mail.mode = "no_such_user"
    code, out = cli(config, "digest", "send", "--now")
    assert code == 5 and "failed for good 1 digests" in out and "2 of its 2 alerts" in out, out
    [failed] = digests(config, "--failed")
    assert failed["state"] == "failed" and failed["failed_at"] and "550 5.1.1" in failed["last_error"]
    assert digests(config, "--pending") == []  # not retried
    code, out = cli(config, "status")
    assert "1 digests FAILED for good" in out, out
    assert json_lines(config, "status")[0]["digests"]["failed"] == 1
    # Its alerts go into the next digest: refused too, and this time kept (once only).
    code, out = cli(config, "digest", "send", "--now")
    assert code == 5 and "0 of its 2 alerts go into the next digest" in out, out
    code, out = cli(config, "digest", "send", "--now")
    assert code == 0 and "composed 0 digests" in out, out  # nothing goes round again
    assert [d["state"] for d in digests(config)] == ["failed", "failed"]
    assert mail.received == []


def test_a_5xx_after_give_up_after_attempts_fails_the_digest_and_frees_its_alerts(
        tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [KREMLIN], rules=[LEADERS],
                   digest={"give_up_after": 2})
    mail.mode = "reject"  # 554 at the end of DATA
    code, out = cli(config, "digest", "send", "--now")
    assert code == 5 and "retried later" in out, out  # one 5xx: maybe a fluke
    code, out = cli(config, "digest", "send", "--now")
    assert code == 5 and "failed for good 1 digests" in out, out
    [failed] = digests(config, "--failed")
    assert failed["attempts"] == 2 and "554" in failed["last_error"]
    mail.mode = "accept"
    code, out = cli(config, "digest", "send", "--now")
    assert code == 0, out
    [received] = mail.received
    assert "Kremlin on Maduro" in text_of(received.message)
    assert [a["sent_at"] is not None for a in json_lines(config, "alerts", "list")] == [True]


def test_a_digest_lists_max_alerts_and_counts_the_rest(tmp_path: Path, db_url: str,
                                                       mail: MailServer) -> None:
    many = [Story(f"s{i}", "RFE/RL", f"Maduro item {i}", f"https://www.rferl.org/a/{i}.html",
                  f"Maduro spoke of {' and '.join(f'{w}{i}' for w in WORDS[i % 7::7])}.",
                  published_at=(STORED_AT - timedelta(minutes=i)).isoformat())
            for i in range(30)]
    config = setup(tmp_path, db_url, mail, many, rules=[LEADERS],
                   digest={"max_alerts": 12, "full_entries": 5})
    assert cli(config, "digest", "send", "--now")[0] == 0
    [received] = mail.received
    text, html = text_of(received.message), html_of(received.message)
    assert received.message["Subject"].startswith("30 new stories")
    listed = [i for i in range(30) if f"Maduro item {i}\n" in text or f"Maduro item {i} (" in text]
    assert listed == list(range(12)), listed  # the newest 12
    assert "And 18 more stories of this rule, not listed: one digest lists 12 at most." in text
    assert "And 18 more stories of this rule" in html
    # All 30 are carried: none comes back in the next digest.
    assert all(a["sent_at"] for a in json_lines(config, "alerts", "list"))


# --- stories: each once, and only what they gained afterwards ---------------------------------

KREMLIN_AGAIN = Story("kremlin-again", "RFE/RL", "Peskov: Russia will respect Venezuela's choice",
                      "https://www.rferl.org/a/peskov-venezuela.html",
                      "Kremlin spokesman Dmitry Peskov told journalists that Russia would respect "
                      "Maduro's removal as an internal matter of Venezuela, and that Moscow had "
                      "spoken to the new authorities.",
                      published_at="2026-11-24T08:00:00+00:00")


def test_a_story_mailed_before_comes_back_only_as_more_reports(
        tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [KREMLIN])
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert len(mail.received) == 2
    store_stories(config, [KREMLIN_AGAIN, LATER], STORED_AT + timedelta(days=1))
    stories = {i["title"]: i["story"] for i in json_lines(config, "items", "list")}
    assert stories["Kremlin on Maduro"] == stories[KREMLIN_AGAIN.title]
    assert stories["Kremlin on Maduro"] != stories[LATER.title]

    assert cli(config, "digest", "send", "--now")[0] == 0
    got = by_recipient(MailServer(received=mail.received[2:]))
    desk, analyst = got["desk@example.org"], got["analyst@example.org"]
    assert desk["Subject"] == "1 new story and 1 update: Venezuela leadership (2)"
    text = text_of(desk)
    assert text.count("Matched: ") == 1 and "* Maduro's ministers questioned" in text
    assert re.search(r"  Stories sent before, with new reports:\n  - Kremlin on Maduro: 1 more "
                     r"report since \d+ \w+ \d{4}, \d\d:\d\d \(RFE/RL\); also matches Russia "
                     r"and Latin America\n    https://www\.rferl\.org/a/peskov-venezuela\.html\n",
                     text), text
    assert "1 more report" in html_of(desk)
    assert analyst["Subject"] == "1 story update: Russia and Latin America (1)"
    assert "Matched: " not in text_of(analyst)
    # Nothing comes a third time.
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert len(mail.received) == 4


def test_a_story_whose_digest_failed_for_good_is_new_again(
        tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [KREMLIN], rules=[LEADERS])
    mail.mode = "no_such_user"
    assert cli(config, "digest", "send", "--now")[0] == 5
    mail.mode = "accept"
    store_stories(config, [KREMLIN_AGAIN], STORED_AT + timedelta(days=1))
    assert cli(config, "digest", "send", "--now")[0] == 0
    [received] = mail.received
    text = text_of(received.message)
    # Never read, so shown in full: its two reports, the earliest leading.
    assert received.message["Subject"] == "1 new story: Venezuela leadership (1)"
    assert "* Kremlin on Maduro\n" in text and "more report" not in text
    assert "2 reports from 2 outlets" in text


# --- safety --------------------------------------------------------------------------------------

HOSTILE = Story(
    "hostile", "teleSUR English",
    "Maduro speaks\r\nBcc: victim@evil.example\r\nX-Injected: yes <script>alert(1)</script>",
    "javascript:alert(document.cookie)",
    'Maduro said <img src=x onerror="alert(1)"> & <a href="https://evil.example">click</a> '
    "</td></tr></table><h1>fake</h1>" + FILLER,
    published_at="2026-11-22T10:00:00+00:00")
HOSTILE_COPY = Story("hostile-copy", "RFE/RL", "copy", "data:text/html,<script>alert(2)</script>",
                     HOSTILE.text, copy_of="hostile")


def test_hostile_titles_and_snippets_are_escaped_and_inject_no_headers(
        tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [HOSTILE, HOSTILE_COPY], rules=[LEADERS])
    assert cli(config, "digest", "send", "--now")[0] == 0
    [received] = mail.received
    assert received.recipients == ["desk@example.org"]  # no Bcc smuggled into the envelope
    msg = received.message
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    header_block = received.data.split(b"\r\n\r\n", 1)[0]
    assert b"victim@evil.example" not in header_block
    html = html_of(msg)
    for raw in ("<script", "<img", "onerror=\"", "<h1>", 'href="https://evil.example"',
                "javascript:", "data:text/html"):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; &lt;a href=" in html
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;h1&gt;fake" in html
    # The title survives, on one line, as text.
    text = text_of(msg)
    assert ("* Maduro speaks Bcc: victim@evil.example X-Injected: yes "
            "<script>alert(1)</script>") in text
    assert "javascript:" not in text and "Also reported by: RFE/RL\n" in text


# --- failures and retries ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["refuse", "drop", "reject"])
def test_a_failed_send_stays_pending_and_is_retried_with_backoff(
        tmp_path: Path, db_url: str, mail: MailServer, mode: str) -> None:
    config = setup(tmp_path, db_url, mail, [KREMLIN], rules=[LEADERS])
    settings = load_settings(config)
    sessions = sessions_of(settings)
    mailer = SmtpMailer(settings.smtp, str(config))
    mail.mode = mode

    code, out = cli(config, "digest", "send", "--now")
    assert code == 5, out
    assert "not sent 1 digests (kept, retried later)" in out
    [pending] = digests(config, "--pending")
    assert pending["attempts"] == 1 and pending["sent_at"] is None
    assert {"refuse": "451 4.3.0", "reject": "554 5.7.1",
            "drop": "closed"}[mode] in pending["last_error"]
    assert mail.attempts == 1 and not mail.received
    assert not any(a["sent_at"] for a in json_lines(config, "alerts", "list"))

    # Not yet due: the backoff holds it back; each failure doubles the wait.
    failed_at = datetime.fromisoformat(pending["next_attempt_at"]) - timedelta(minutes=1)
    clock = Clock(failed_at + timedelta(seconds=30))
    assert delivery.send_pending(sessions, settings, mailer, clock, owner="test") == []
    assert mail.attempts == 1
    clock.now = failed_at + timedelta(minutes=1, seconds=1)
    [second] = delivery.send_pending(sessions, settings, mailer, clock, owner="test")
    assert second.error and second.retry_at == clock.now + timedelta(minutes=2)
    assert mail.attempts == 2

    # The server recovers: the same message goes out, once, with its Message-ID.
    mail.mode = "accept"
    clock.now = second.retry_at
    [third] = delivery.send_pending(sessions, settings, mailer, clock, owner="test")
    assert third.error is None
    [received] = mail.received
    assert received.message["Message-ID"] == pending["message_id"]
    assert "Kremlin on Maduro" in text_of(received.message)
    [sent] = digests(config)
    assert sent["sent_at"] and sent["attempts"] == 3 and sent["last_error"] is None
    assert all(a["sent_at"] for a in json_lines(config, "alerts", "list"))
    later = Clock(clock.now + timedelta(days=1))
    assert delivery.send_pending(sessions, settings, mailer, later, owner="test") == []
    assert len(mail.received) == 1


def test_backoff_is_capped(tmp_path: Path) -> None:
    assert [delivery.retry_delay(n, 600).total_seconds() for n in range(1, 7)] == [
        60, 120, 240, 480, 600, 600]


def test_an_unreachable_server_fails_the_round_quickly_and_loses_nothing(
        tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [DELEGATION, KREMLIN],
                   smtp={"port": 1})  # nothing listens on port 1
    settings = load_settings(config)
    sessions = sessions_of(settings)
    delivery.compose(sessions, settings, datetime.now(UTC), scheduled=False)
    smtp = SmtpMailer(settings.smtp, str(config))
    tried: list[bytes] = []

    class Counting:
        def send(self, message: bytes, sender: str, recipients: Any) -> None:
            tried.append(message)
            smtp.send(message, sender, recipients)

    results = delivery.send_pending(sessions, settings, Counting(), lambda: datetime.now(UTC),
                                    owner="test")
    assert len(results) == 2 and all(r.error for r in results)
    assert len(tried) == 1  # the second was not tried against a server known to be down
    code, out = cli(config, "digest", "send", "--now")
    assert code == 5, out
    rows = digests(config, "--pending")
    assert len(rows) == 2
    assert all("cannot connect" in d["last_error"] and d["attempts"] == 2 for d in rows)
    # The server is back (the config points at it again): both go out.
    config = write_config(config, db_url=db_url, feeds=FEEDS, rules=[LEADERS, RUSSIA],
                          smtp={"host": "127.0.0.1", "port": mail.port})
    assert cli(config, "digest", "send", "--now")[0] == 0
    assert sorted(r.recipients[0] for r in mail.received) == ["analyst@example.org",
                                                              "desk@example.org"]
    assert {r.message["Message-ID"] for r in mail.received} == {d["message_id"] for d in rows}


def test_a_crash_after_acceptance_repeats_once_with_the_same_message_id(
        tmp_path: Path, db_url: str, mail: MailServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server accepted the digest, then recording it failed (the database went
    away, or the process died): the next run sends it again, the same bytes with the
    same Message-ID, and then never again."""
    config = setup(tmp_path, db_url, mail, [KREMLIN], rules=[LEADERS])
    settings = load_settings(config)
    sessions = sessions_of(settings)
    mailer = SmtpMailer(settings.smtp, str(config))
    clock = Clock(datetime.now(UTC))
    delivery.compose(sessions, settings, clock(), scheduled=False)

    def database_gone(*args: object, **kwargs: object) -> None:
        raise OperationalError("UPDATE digests", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "mark_digest_sent", database_gone)
    with pytest.raises(StoreError, match="recording digest"):
        delivery.send_pending(sessions, settings, mailer, clock, owner="test")
    monkeypatch.undo()
    assert len(mail.received) == 1

    [again] = delivery.send_pending(sessions, settings, mailer, clock, owner="test")
    assert again.error is None
    first, second = mail.received
    assert first.data == second.data
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert delivery.send_pending(sessions, settings, mailer, clock, owner="test") == []
    assert delivery.compose(sessions, settings, clock(), scheduled=False) == []
    assert len(mail.received) == 2


def test_a_send_slower_than_the_lease_keeps_its_claims(tmp_path: Path, db_url: str,
                                                       mail: MailServer) -> None:
    """Each message takes 60% of the lease. During the second, past the first claim's
    lease, another worker tries to send everything pending: it must find the rest still
    claimed, so nothing goes twice."""
    config = setup(tmp_path, db_url, mail, [KREMLIN, HAVANA])
    settings = load_settings(config)
    sessions = sessions_of(settings)
    clock = Clock(datetime.now(UTC))
    assert len(delivery.compose(sessions, settings, clock(), scheduled=False)) == 2
    lease = timedelta(seconds=settings.daemon.lease)
    smtp = SmtpMailer(settings.smtp, str(config))
    other: list[delivery.Delivery] = []

    class Slow:
        def send(self, message: bytes, sender: str, recipients: list[str]) -> None:
            clock.now += lease * 0.6  # by the second message, past the first claim's lease
            if len(mail.received) == 1:  # meanwhile, another worker's round
                other.extend(delivery.send_pending(sessions, settings, smtp, clock,
                                                   owner="other", everything=True))
            smtp.send(message, sender, recipients)

    sent = delivery.send_pending(sessions, settings, Slow(), clock, owner="slow")  # type: ignore[arg-type]
    assert [d.error for d in sent] == [None, None]
    assert other == []
    assert sorted(r.recipients[0] for r in mail.received) == ["analyst@example.org",
                                                              "desk@example.org"]


# --- the schedule --------------------------------------------------------------------------------

def test_digests_go_out_when_the_schedule_says(tmp_path: Path, db_url: str,
                                               mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [KREMLIN], rules=[LEADERS])
    settings = load_settings(config)
    sessions = sessions_of(settings)
    mailer = SmtpMailer(settings.smtp, str(config))
    caracas_7am = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)

    def round_at(now: datetime) -> delivery.Round:
        return delivery.run_round(sessions, settings, mailer, Clock(now), owner="test")

    # The first check only starts the schedule: the first digest is the next 07:00.
    assert round_at(caracas_7am - timedelta(hours=3)).composed == []
    assert next_slot(sessions, settings) == caracas_7am
    assert round_at(caracas_7am - timedelta(seconds=1)).composed == []
    assert not mail.received
    result = round_at(caracas_7am + timedelta(seconds=20))
    assert [c.recipient for c in result.composed] == ["desk@example.org"]
    assert len(mail.received) == 1
    assert next_slot(sessions, settings) == caracas_7am + timedelta(days=1)

    # New alerts wait for the next slot; a daemon that was down for days sends one
    # catch-up digest, not one per missed slot.
    store_stories(config, [LATER], caracas_7am + timedelta(hours=2))
    assert round_at(caracas_7am + timedelta(hours=5)).composed == []
    catch_up = round_at(caracas_7am + timedelta(days=3, hours=2))
    assert len(catch_up.composed) == 1 and len(mail.received) == 2
    assert "Maduro's ministers questioned" in text_of(mail.received[1].message)
    assert next_slot(sessions, settings) == caracas_7am + timedelta(days=4)


def test_a_changed_schedule_starts_again(tmp_path: Path, db_url: str, mail: MailServer) -> None:
    config = setup(tmp_path, db_url, mail, [KREMLIN], rules=[LEADERS])
    settings = load_settings(config)
    sessions = sessions_of(settings)
    mailer = SmtpMailer(settings.smtp, str(config))
    now = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    delivery.run_round(sessions, settings, mailer, Clock(now), owner="test")
    write_config(config, db_url=db_url, feeds=FEEDS, rules=[LEADERS],
                 smtp={"host": "127.0.0.1", "port": mail.port},
                 digest={"schedule": "30 18 * * fri"})
    friday = load_settings(config)
    assert next_slot(sessions, friday) is None
    delivery.run_round(sessions, friday, mailer, Clock(now), owner="test")
    assert next_slot(sessions, friday) == datetime(2026, 11, 27, 22, 30, tzinfo=UTC)
