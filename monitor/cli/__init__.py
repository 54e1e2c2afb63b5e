"""Command line: argument parsing, output and exit codes (the only place that exits).

Exit codes: 0 success; 1 unexpected failure; 2 bad usage, bad config or a bad query;
3 the database cannot be reached or used; 4 the seeds cannot be read; 5 a digest
could not be sent (it stays pending and is retried).

    __init__.py   the parser, logging, dispatch and error handling
    common.py     exit codes, JSON output, opening a database whose schema is current
    web.py        web (the review page alone), web --hash-password
    daemon.py     run, seeds load, db upgrade, db backup, db prune, db reindex-search,
                  config show
    status.py     status
    feeds.py      feeds list, feeds forget, feeds poll
    items.py      items list, items refetch
    dedup.py      dedup check, dedup reindex
    stories.py    stories list, stories show, stories check
    alerts.py     rules list, alerts list
    search.py     search, rules test, rules backfill
    digests.py    digest send, digest preview, digest list
    channels.py   channels list, channels retry, channels send, channels test
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from monitor import __version__, logs
from monitor.cli.alerts import cmd_alerts_list, cmd_rules_list
from monitor.cli.channels import (
    cmd_channels_list,
    cmd_channels_retry,
    cmd_channels_send,
    cmd_channels_test,
)
from monitor.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_MAIL,
    EXIT_OK,
    EXIT_SEEDS,
    EXIT_STORE,
)
from monitor.cli.daemon import (
    cmd_config_show,
    cmd_db_backup,
    cmd_db_prune,
    cmd_db_reindex_search,
    cmd_db_upgrade,
    cmd_run,
    cmd_seeds_load,
)
from monitor.cli.dedup import cmd_dedup_check, cmd_dedup_reindex
from monitor.cli.digests import cmd_digest_list, cmd_digest_preview, cmd_digest_send
from monitor.cli.feedlist import cmd_feeds_discover, cmd_feeds_export, cmd_feeds_import
from monitor.cli.feeds import cmd_feeds_forget, cmd_feeds_list, cmd_feeds_poll
from monitor.cli.items import cmd_items_list, cmd_items_refetch
from monitor.cli.search import cmd_rules_backfill, cmd_rules_test, cmd_search
from monitor.cli.status import cmd_status
from monitor.cli.stories import cmd_stories_check, cmd_stories_list, cmd_stories_show
from monitor.cli.web import cmd_web
from monitor.config import config_path, load_settings
from monitor.errors import (
    ConfigError,
    InputError,
    MailError,
    MonitorError,
    QueryError,
    SeedError,
    StoreError,
    UsageError,
)

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_MAIL", "EXIT_OK", "EXIT_SEEDS", "EXIT_STORE",
           "build_parser", "main"]

log = logging.getLogger("monitor")



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="monitor", description="Media-monitoring ingestion daemon.")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $MONITOR_CONFIG, else config/monitor.toml)")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="override [logging] level")
    p.add_argument("--log-format", choices=["text", "json"],
                   help="override [logging] format: text lines or one JSON object per line")
    p.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="poll feeds and store new articles")
    run.add_argument("--once", action="store_true",
                     help="poll every enabled feed now, print a summary and exit")
    run.add_argument("--listen", metavar="HOST:PORT",
                     help="serve the review page, /healthz and /metrics here instead of "
                          "[daemon] listen (port 0: any free port; \"\": none), e.g. for a "
                          "second worker on the same machine")

    wp = sub.add_parser("web", help="serve the review page and its JSON API alone (no "
                                    "polling), on [daemon] listen")
    wp.add_argument("--listen", metavar="HOST:PORT",
                    help="serve here instead of [daemon] listen (port 0: any free port)")
    wp.add_argument("--hash-password", action="store_true",
                    help="print an argon2 hash of a password (asked for, or read from "
                         "standard input) for [web] auth, and exit")

    st = sub.add_parser("status", help="workers, backlog, failing feeds and digests at a glance")
    st.add_argument("--json", action="store_true", help="print one JSON object")

    seeds = sub.add_parser("seeds", help="seed corpus").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    seeds.add_parser("load", help="load seed files into the database (idempotent)")

    dbp = sub.add_parser("db", help="database").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    dbp.add_parser("upgrade", help="create or upgrade the schema to the newest revision")
    bk = dbp.add_parser("backup", help="copy the SQLite database to a new file, consistent "
                                       "and compact, while the daemon runs (PostgreSQL: "
                                       "pg_dump)")
    bk.add_argument("path", metavar="PATH", help="the new file")
    pr = dbp.add_parser("prune", help="remove what [retention] says has been kept long "
                                      "enough: texts, digest bodies, old worker rows")
    pr.add_argument("--dry-run", action="store_true",
                    help="say what would go and how much, change nothing")
    dbp.add_parser("reindex-search", help="index every stored item for search again, from "
                                          "scratch (after a crash of the index, or to check it)")

    feeds = sub.add_parser("feeds", help="feeds").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    fl = feeds.add_parser("list", help="feeds and their fetch state")
    fl.add_argument("--json", action="store_true", help="one JSON object per line")
    fl.add_argument("--all", action="store_true",
                    help="the disabled feeds too (gone from the config, or enabled = false)")
    ff = feeds.add_parser("forget", help="remove a feed the config no longer lists (its "
                                         "items stay)")
    ff.add_argument("feed", metavar="NAME_OR_URL")
    fi = feeds.add_parser("import", help="the [[feeds]] tables for an OPML file's feeds the "
                                         "config lacks (a feed reader's export)")
    fi.add_argument("file", metavar="FILE.opml")
    fi.add_argument("--write", action="store_true",
                    help="append them to the config (checked first; comments kept) instead "
                         "of printing them")
    feeds.add_parser("export", help="the config's feeds as OPML, for a feed reader")
    fd = feeds.add_parser("discover", help="find a site's feeds and print them as "
                                           "[[feeds]] tables, with what each holds")
    fd.add_argument("url", metavar="URL", help="the site, one of its pages, or a feed")
    fd.add_argument("--max-requests", type=int, default=12, metavar="N",
                    help="fetch at most N addresses (default 12)")
    fd.add_argument("--timeout", type=float, default=30, metavar="SECONDS",
                    help="give up searching after this long (default 30)")
    fd.add_argument("--verbose", action="store_true",
                    help="also list the addresses tried that held no feed")
    fp = feeds.add_parser("poll", help="poll one feed now (with a daemon running: it polls "
                                       "the feed within seconds)")
    fp.add_argument("feed", metavar="NAME_OR_URL")
    fp.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                    help="with a daemon running, wait this long for its poll's outcome "
                         "(default 60; 0: do not wait)")

    items = sub.add_parser("items", help="stored items").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    il = items.add_parser("list", help="stored items, newest first")
    il.add_argument("--json", action="store_true", help="one JSON object per line")
    il.add_argument("--text", action="store_true", help="include the extracted text")
    il.add_argument("--status", choices=["new", "duplicate"], help="only items with this status")
    il.add_argument("--feed", metavar="NAME_OR_URL", help="only items of this feed")
    il.add_argument("--limit", type=int, metavar="N", help="at most N items")
    ir = items.add_parser(
        "refetch", help="fetch items' pages again and store their new text (dedup and "
                        "rules run again; no rule alerts twice for a story)")
    ir.add_argument("ids", type=int, nargs="*", metavar="ID", help="these items")
    ir.add_argument("--feed", metavar="NAME_OR_URL", help="the items of this feed")
    ir.add_argument("--since", metavar="DURATION",
                    help="the items stored in the last DURATION (7d)")
    ir.add_argument("--failed", action="store_true",
                    help="only items whose page failed (page_error in items list --json)")
    ir.add_argument("--limit", type=int, metavar="N", help="at most N items, oldest first")
    ir.add_argument("--json", action="store_true", help="one JSON object per item")

    dedup = sub.add_parser("dedup", help="near-duplicate detection").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    dc = dedup.add_parser(
        "check", help="explain the duplicate verdict for one text: top matches and scores")
    dc.add_argument("source", metavar="PATH_OR_URL",
                    help="a text or HTML file, - for standard input, or an http(s) URL "
                         "(fetched and extracted the way the daemon does)")
    dc.add_argument("--top", type=int, default=5, metavar="N", help="matches to show (default 5)")
    dc.add_argument("--json", action="store_true", help="print one JSON object")
    dedup.add_parser("reindex", help="recompute the near-duplicate index of all seeds and items")

    stories = sub.add_parser("stories", help="the write-ups of one event, across outlets"
                             ).add_subparsers(dest="action", required=True, metavar="ACTION")
    sl = stories.add_parser("list", help="stories, last reported first")
    sl.add_argument("--json", action="store_true", help="one JSON object per line")
    sl.add_argument("--since", metavar="DURATION", help="only stories reported in the last "
                                                         "DURATION (7d)")
    sl.add_argument("--min-outlets", type=int, default=0, metavar="N",
                    help="only stories carried by at least N feeds")
    sl.add_argument("--limit", type=int, metavar="N", help="at most N stories")
    ss = stories.add_parser("show", help="one story: its items, outlets and copies")
    ss.add_argument("id", type=int, metavar="ID")
    ss.add_argument("--json", action="store_true", help="one JSON object")
    sc = stories.add_parser("check", help="which story a text would join, and why")
    sc.add_argument("source", metavar="PATH_OR_URL",
                    help="a text or HTML file, - for standard input, or an http(s) URL")
    sc.add_argument("--title", help="the article's title (it counts with the text)")
    sc.add_argument("--at", metavar="DATE", help="the article's time, ISO 8601 (default "
                                                 "now): stories reported within [stories] "
                                                 "window before it are its candidates")
    sc.add_argument("--top", type=int, default=5, metavar="N",
                    help="candidate stories to show (default 5)")
    sc.add_argument("--json", action="store_true", help="one JSON object")

    se = sub.add_parser("search", help="search every stored item: the rule query language, "
                                       "best first, one line per story")
    se.add_argument("query", metavar="QUERY", nargs="+",
                    help="a query in quotes, as rules are written, e.g. "
                         "'Maduro -Guaido \"oil exports\" title:Caracas' "
                         "(one starting with - needs no --)")
    se.add_argument("--since", metavar="DURATION",
                    help="only items stored in the last DURATION (90m, 12h, 7d); default all")
    se.add_argument("--until", metavar="DURATION",
                    help="only items stored more than DURATION ago")
    se.add_argument("--feed", action="append", metavar="NAME_OR_URL",
                    help="only this feed's items (repeat for several)")
    se.add_argument("--story", type=int, metavar="ID", help="only this story's items")
    se.add_argument("--status", choices=("new", "duplicate", "all"), default="new",
                    help="originals (new, the default), duplicates, or all")
    se.add_argument("--limit", type=int, metavar="N",
                    help="stories (items with --items) to show, best first (default 20; "
                         "0: all)")
    se.add_argument("--items", action="store_true",
                    help="one line per item, not per story")
    se.add_argument("--json", action="store_true", help="one JSON object per story (item)")

    rules = sub.add_parser("rules", help="alert rules").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    rt = rules.add_parser(
        "test", help="show how a query reads and which stored items it would match")
    rt.add_argument("query", metavar="QUERY", nargs="+",
                    help="a rule query in quotes, e.g. 'Maduro OR \"Delcy Rodriguez\"' "
                         "(one starting with - needs no --)")
    rt.add_argument("--since", default="7d", metavar="DURATION",
                    help="items stored in the last DURATION (90m, 12h, 7d; default 7d), or all")
    rt.add_argument("--limit", type=int, metavar="N",
                    help="matches to show (default 20, all with --json; 0 for all); all are counted")
    rt.add_argument("--json", action="store_true", help="one JSON object per matching item")
    rb = rules.add_parser("backfill", help="store the alerts a rule would have raised on "
                                           "the originals stored in a window (never twice)")
    rb.add_argument("rule", metavar="NAME")
    rb.add_argument("--since", required=True, metavar="DURATION",
                    help="originals stored in the last DURATION (7d, 48h), or all")
    rb.add_argument("--dry-run", action="store_true",
                    help="say what would be stored, store nothing")
    rb.add_argument("--json", action="store_true", help="one JSON object")
    rl = rules.add_parser("list", help="the config's rules, how they read, their alerts")
    rl.add_argument("--json", action="store_true", help="one JSON object per line")

    alerts = sub.add_parser("alerts", help="stored alerts").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    al = alerts.add_parser("list", help="alerts, newest first")
    al.add_argument("--json", action="store_true", help="one JSON object per line")
    al.add_argument("--rule", metavar="NAME", help="only this rule's alerts")
    al.add_argument("--unsent", action="store_true", help="only alerts no digest carried yet")
    al.add_argument("--since", metavar="DURATION", help="only alerts of the last DURATION (7d)")
    al.add_argument("--limit", type=int, metavar="N", help="at most N alerts")

    digest = sub.add_parser("digest", help="digest emails").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    ds = digest.add_parser("send", help="compose the digests that are due and send what is pending")
    ds.add_argument("--now", action="store_true",
                    help="compose every recipient's digest now, whatever the schedule, and "
                         "send every pending digest, whatever its retry time")
    dp = digest.add_parser("preview", help="render digests without sending or marking anything")
    dp.add_argument("--recipient", metavar="ADDR", help="only this recipient's digest")
    dp.add_argument("--out", metavar="FILE",
                    help="write the digest to FILE.eml (the whole email) or FILE.html "
                         "(its HTML part) instead of printing the text part")
    dl = digest.add_parser("list", help="digests, newest first: sent, pending or failed, "
                                        "with errors")
    dl.add_argument("--pending", action="store_true", help="only digests not yet sent")
    dl.add_argument("--failed", action="store_true",
                    help="only digests the server refused for good (not tried again)")
    dl.add_argument("--json", action="store_true", help="one JSON object per line")
    dl.add_argument("--limit", type=int, metavar="N", help="at most N digests")

    ch = sub.add_parser("channels", help="alert channels (webhook, Slack, Mattermost, Matrix, "
                                         "ntfy): deliveries, retries, dead letters"
                        ).add_subparsers(dest="action", required=True, metavar="ACTION")
    cl = ch.add_parser("list", help="each channel's delivered, pending and dead messages")
    cl.add_argument("name", nargs="?", metavar="NAME",
                    help="only this channel, with its newest messages")
    cl.add_argument("--messages", type=int, default=0, metavar="N",
                    help="also the N newest messages (default with NAME: 20)")
    cl.add_argument("--json", action="store_true", help="one JSON object per line")
    cr = ch.add_parser("retry", help="send a channel's dead messages again (after mending "
                                     "its URL or token)")
    cr.add_argument("name", metavar="NAME")
    ch.add_parser("send", help="deliver what is due on every channel now, once")
    ct = ch.add_parser("test", help="send one sample message to a channel now (nothing "
                                    "stored): check its URL, token and secret")
    ct.add_argument("name", metavar="NAME")

    cfg = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    cfg.add_parser("show", help="print the effective config as JSON, secrets hidden")
    return p


COMMANDS = {
    ("run", None): cmd_run,
    ("web", None): cmd_web,
    ("status", None): cmd_status,
    ("seeds", "load"): cmd_seeds_load,
    ("db", "upgrade"): cmd_db_upgrade,
    ("db", "backup"): cmd_db_backup,
    ("db", "prune"): cmd_db_prune,
    ("db", "reindex-search"): cmd_db_reindex_search,
    ("feeds", "list"): cmd_feeds_list,
    ("feeds", "forget"): cmd_feeds_forget,
    ("feeds", "poll"): cmd_feeds_poll,
    ("feeds", "import"): cmd_feeds_import,
    ("feeds", "export"): cmd_feeds_export,
    ("feeds", "discover"): cmd_feeds_discover,
    ("items", "list"): cmd_items_list,
    ("items", "refetch"): cmd_items_refetch,
    ("dedup", "check"): cmd_dedup_check,
    ("dedup", "reindex"): cmd_dedup_reindex,
    ("stories", "list"): cmd_stories_list,
    ("stories", "show"): cmd_stories_show,
    ("stories", "check"): cmd_stories_check,
    ("search", None): cmd_search,
    ("rules", "test"): cmd_rules_test,
    ("rules", "backfill"): cmd_rules_backfill,
    ("rules", "list"): cmd_rules_list,
    ("alerts", "list"): cmd_alerts_list,
    ("digest", "send"): cmd_digest_send,
    ("digest", "preview"): cmd_digest_preview,
    ("digest", "list"): cmd_digest_list,
    ("channels", "list"): cmd_channels_list,
    ("channels", "retry"): cmd_channels_retry,
    ("channels", "send"): cmd_channels_send,
    ("channels", "test"): cmd_channels_test,
    ("config", "show"): cmd_config_show,
}


def _reader_went_away(out: TextIO) -> int:
    """The reader closed the pipe (``monitor items list | head``): end quietly, as grep
    does. What is left in the buffer would fail again when Python flushes it at exit,
    so standard output goes to /dev/null from here on."""
    if out is sys.stdout:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    return EXIT_OK


# The commands that take a query, with their options and whether each takes a value
# (see query_as_argument).
QUERY_OPTIONS = {
    ("rules", "test"): {"--since": True, "--limit": True, "--json": False},
    ("search",): {"--since": True, "--until": True, "--feed": True, "--story": True,
                  "--status": True, "--limit": True, "--items": False, "--json": False},
}


def query_as_argument(argv: Sequence[str]) -> list[str]:
    """``argv`` with a `search` or `rules test` query that starts with ``-`` (``-Trump``,
    ``-"a b" Maduro``) made the positional argument it is: argparse would take it for an
    unknown option. Every token after the command that is none of its options (or their
    values) goes after a ``--``."""
    argv = list(argv)
    found = next(((i + len(c), k) for c, k in QUERY_OPTIONS.items()
                  for i in range(len(argv) - len(c) + 1) if tuple(argv[i:i + len(c)]) == c),
                 None)
    if found is None:
        return argv
    at, known = found
    if "--" in argv[at:]:
        return argv
    options: list[str] = []
    rest: list[str] = []
    tokens = iter(argv[at:])
    for token in tokens:
        takes_value = {**known, "-h": False, "--help": False}.get(token.split("=", 1)[0])
        if takes_value is None:
            rest.append(token)
            continue
        options.append(token)
        if takes_value and "=" not in token:
            value = next(tokens, None)
            if value is not None:
                options.append(value)
    return argv[:at] + options + (["--", *rest] if rest else [])


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``monitor`` command. Returns the exit code."""
    out = out or sys.stdout
    args = build_parser().parse_args(query_as_argument(sys.argv[1:] if argv is None else argv))
    logs.setup(args.log_level or "INFO", args.log_format or "text")
    try:
        settings = load_settings(config_path(args.config, os.environ))
        logs.setup(args.log_level or settings.log_level, args.log_format or settings.log_format)
        handler = COMMANDS[(args.command, getattr(args, "action", None))]
        code = handler(settings, args, out)
        out.flush()
        return code
    except BrokenPipeError:
        return _reader_went_away(out)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return EXIT_CONFIG
    except QueryError as exc:
        log.error("query error: %s\n%s\n(%s)", exc, exc.pointer(), exc.hint)
        return EXIT_CONFIG
    except (InputError, UsageError) as exc:
        log.error("%s", exc.with_hint())
        return EXIT_CONFIG
    except StoreError as exc:
        log.error("database error: %s", exc.with_hint())
        return EXIT_STORE
    except SeedError as exc:
        log.error("seed error: %s", exc.with_hint())
        return EXIT_SEEDS
    except MailError as exc:
        log.error("mail error: %s", exc.with_hint())
        return EXIT_MAIL
    except MonitorError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
