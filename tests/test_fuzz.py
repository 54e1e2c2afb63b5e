"""Fuzzing where hostile text comes in: rule queries, URLs, config files and feeds.

Each target either returns a value or raises our own error (a MonitorError, of the
kind it documents), never a library's or Python's own (IndexError, ValueError,
RecursionError, UnicodeError ...). Where a value comes back, its promises are
checked too: a canonical URL is its own canonical form, an entry's link is an
absolute http(s) URL, a stored text holds no NUL (PostgreSQL refuses it).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, FeedParseError, QueryError
from monitor.ingest.articles import Article
from monitor.ingest.feeds import FeedEntry, ParsedFeed, parse_feed
from monitor.ingest.urls import canonical_url, choose_canonical
from monitor.pipeline.entries import choose_text
from monitor.rules import Document, Query, parse

REPO = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=150, deadline=None)  # for targets that take milliseconds each

# Text with what breaks naive code: NUL and other controls, lone surrogates, combining
# marks, right-to-left and zero-width characters, scripts without spaces, emoji.
NASTY = ["\x00", "\x01", "\x1b", "\x7f", "\u0085", "\u200b", "\u202e", "\ufeff", "\ud800",
         "\U0001f600", "\u0301", "Łódź", "東京", "ß", "İ", "\ufb01", "\u2028", "'", '"', "\\",
         "<", ">", "&", "%", "%00", "%ff", "&amp;", "&#0;", "&#xD800;", " ", "\t", "\n"]
nasty_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=5)), max_size=12).map("".join),
)


def no_surrogates(max_size: int = 60) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size)


# --- the rule query parser ----------------------------------------------------------------------

QUERY_TOKENS = ["(", ")", '"', "\\", "*", ":", "-", "AND", "OR", "NOT", "and", "or", "not",
                "title:", "text:", "TITLE:", "url:", "maduro", "narco*", "a*", "x", "é", "東京",
                "&&", "||", "!", "\x00", "\u0301", " ", "\t", "\n", "\u3000", "-(", "\\\"", "¹"]


def check_query(text: str) -> None:
    try:
        q = parse(text)
    except QueryError as err:
        assert 0 <= err.position <= len(text), (err.position, len(text))
        assert err.reason and str(err)
        assert err.pointer().startswith(text)
        return
    assert isinstance(q, Query)
    again = parse(str(q))  # the canonical form parses to the same query
    assert again == q and str(again) == str(q)
    q.matches(Document(text, text))


@FAST
@given(st.one_of(st.text(max_size=80), nasty_text,
                 st.lists(st.sampled_from(QUERY_TOKENS), max_size=30).map(" ".join),
                 st.lists(st.sampled_from(QUERY_TOKENS), max_size=30).map("".join)))
@example('"unclosed')
@example("((maduro)")
@example("maduro))")
@example("a\x00b")
@example("\\")
def test_the_query_parser_returns_a_query_or_a_query_error(text: str) -> None:
    check_query(text)


OPENERS = ["(", "NOT ", "-", "title:", "( NOT ", "a OR (", "(a ", "text:(", "-(", '("x" ']


@SLOW
@given(st.integers(min_value=1, max_value=12000), st.sampled_from(OPENERS), st.booleans())
@example(10000, "(", False)
@example(10000, "(", True)
@example(5000, "NOT ", True)
@example(5000, "-", True)
@example(3000, "title:", True)
def test_deep_nesting_is_a_query_error_not_a_recursion_error(depth: int, opener: str,
                                                             closed: bool) -> None:
    closers = ")" * (depth * opener.count("(")) if closed else ""
    check_query(opener * depth + "maduro" + closers)


# --- URL canonicalization -----------------------------------------------------------------------
# canonical_url(url, base=None) -> str | None: None for anything that is not an absolute
# http(s) URL (with a host and a valid port); a canonical URL is its own canonical form.

SCHEMES = ["http", "https", "HTTP", "hTTps", "ftp", "javascript", "data", "mailto", "file", ""]
USERINFO = ["", "user@", "u:p@", "@", "a:b:c@", "%40@", "us er@"]
HOSTS = ["example.com", "WWW.Example.COM", "exämple.com", "xn--bcher-kva.ch", "例え.テスト",
         "[::1]", "[::ffff:1.2.3.4]", "[fe80::1%25eth0]", "[zz]", "[::1", "::1]", "127.0.0.1",
         "999.1.1.1", "", "%41.com", "a..b", ".", "-a-.com", "a_b.com", "\u2100.com", "xn--",
         "a" * 70 + ".com", "ｅｘａｍｐｌｅ.com", "host\x00.com", "a.com\\@b.com"]
PORTS = ["", ":80", ":443", ":0", ":8080", ":65535", ":65536", ":99999", ":-1", ":abc", ":",
         ":٣", ":¹", ":" + "9" * 30]
SEGMENTS = ["news", "a b", "%zz", "%2F", "%00", "..", ".", "é", "%C3%A9", "story.php", "", "~x",
            "a;b=c", "(x)", "{x}", "<x>", "http://other.org", "%", "\x01"]
PARAMS = ["id=3", "page=2", "utm_source=rss", "fbclid=x", "rss=1", "123", "q=a+b", "q=a%20b",
          "a=%ff", "=x", "x=", "&", "b=1;c=2", "ref=home", "%E2%82%AC=1", "k=v=w", "u=http://x.org/"]
FRAGMENTS = ["", "#top", "#", "#a#b", "#%zz"]


@st.composite
def url_like(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(SCHEMES))
    sep = draw(st.sampled_from(["://", "://", ":", ":/", ":///", "//"]))
    host = draw(st.one_of(st.sampled_from(HOSTS), no_surrogates(12)))
    path = "/".join(draw(st.lists(st.one_of(st.sampled_from(SEGMENTS), nasty_text), max_size=4)))
    params = draw(st.lists(st.one_of(st.sampled_from(PARAMS), no_surrogates(8)), max_size=4))
    query = ("?" + "&".join(params)) if params or draw(st.booleans()) else ""
    return (f"{scheme}{sep}{draw(st.sampled_from(USERINFO))}{host}{draw(st.sampled_from(PORTS))}"
            f"/{path}{query}{draw(st.sampled_from(FRAGMENTS))}")


def check_canonical(result: str | None) -> None:
    if result is None:
        return
    assert isinstance(result, str)
    parts = urlsplit(result)
    assert parts.scheme in ("http", "https"), result
    assert parts.hostname, result
    assert parts.port is None or 0 <= parts.port <= 65535  # .port raises when it is not
    assert not parts.fragment and "#" not in result
    assert canonical_url(result) == result, "not idempotent"


@FAST
@given(st.one_of(url_like(), nasty_text))
@example("http://[::1")
@example("http://a.com:99999/")
@example("https://e.com/s?a=%ff")
def test_canonical_url_is_none_or_a_canonical_http_url(url: str) -> None:
    check_canonical(canonical_url(url))


@FAST
@given(st.one_of(url_like(), nasty_text), st.one_of(url_like(), nasty_text))
@example("x", "http://[::1")
@example("http://[::1", "http://example.com/")
def test_canonical_url_against_any_base(url: str, base: str) -> None:
    check_canonical(canonical_url(url, base=base))
    check_canonical(choose_canonical(base, url))


NAMES = ["id", "p", "story", "q", "page", "article"]


BASES = ["https://example.com/news", "http://例え.テスト/a/b", "https://[::1]:8443/x",
         "https://example.com/story.php"]
values = st.one_of(st.binary(max_size=6), no_surrogates(6))


@FAST
@given(st.sampled_from(BASES), st.sampled_from(NAMES), values, values)
@example(BASES[0], "q", b"\xe9", b"\xe8")
def test_urls_that_differ_in_a_parameter_value_stay_apart(base: str, name: str, v1: bytes | str,
                                                          v2: bytes | str) -> None:
    """One spelling per article, and one article per spelling: ``?q=%E9`` and ``?q=%E8``
    are two articles."""
    c1 = canonical_url(f"{base}?{name}={quote(v1, safe='')}")
    c2 = canonical_url(f"{base}?{name}={quote(v2, safe='')}")
    assert c1 is not None and c2 is not None
    b1 = v1.encode() if isinstance(v1, str) else v1
    b2 = v2.encode() if isinstance(v2, str) else v2
    assert (c1 == c2) == (b1 == b2), (v1, v2, c1, c2)


@FAST
@given(st.sampled_from(BASES), st.integers(min_value=0), st.integers(min_value=0))
@example(BASES[3], 123, 456)
def test_urls_that_differ_in_a_parameter_without_value_stay_apart(base: str, n1: int,
                                                                  n2: int) -> None:
    """``story.php?123`` and ``story.php?456`` are two articles."""
    c1, c2 = canonical_url(f"{base}?{n1}"), canonical_url(f"{base}?{n2}")
    assert c1 is not None and c2 is not None
    assert (c1 == c2) == (n1 == n2), (c1, c2)


# --- the config loader --------------------------------------------------------------------------
# load_settings(path) -> Settings, or ConfigError naming the file.

SECTIONS: dict[str, list[str]] = {
    "database": ["url"],
    "seeds": ["path"],
    "logging": ["level", "format"],
    "fetch": ["user_agent", "timeout", "connect_timeout", "max_feed_bytes", "max_page_bytes",
              "max_redirects", "concurrency", "per_host", "host_delay", "default_interval",
              "allow_private", "page_attempts", "page_retry", "page_retry_max"],
    "poll": ["jitter", "max_interval", "backoff_base", "backoff_max"],
    "daemon": ["listen", "config_check", "shutdown_timeout", "lease"],
    "extract": ["workers", "min_text_chars", "worker_max_tasks", "timeout", "mode"],
    "dedup": ["jaccard", "containment", "min_words", "max_candidates", "boilerplate"],
    "digest": ["schedule", "timezone", "sender", "sender_name", "send_empty", "full_entries",
               "retry_max", "give_up_after", "max_alerts"],
    "smtp": ["host", "port", "security", "username", "password_env", "timeout", "ca_file"],
    "alerts": ["max_age"],
    "stories": ["enabled", "window", "threshold"],
    "retention": ["duplicate_text", "original_text", "digest_bodies", "stopped_workers",
                  "channel_messages",
                  "story_index", "every", "batch"],
    "web": ["auth"],
}
TABLE_ARRAYS: dict[str, list[str]] = {
    "feeds": ["name", "url", "interval", "enabled", "max_interval", "alert_backlog", "category"],
    "rules": ["name", "query", "recipients"],
}
# Plausible values per key, good and bad, so that generated documents get past the first
# check and reach the later ones.
DURATIONS = ["90s", "15m", "2h", "1d", "0s", "29s", "3650d", "3651d", "99999999999999999999d",
             "1" + "0" * 400 + "s", "٣m", "1.5h", "-5m", "m", ""]
PLAUSIBLE: dict[str, list[Any]] = {
    "url": ["sqlite:///data/monitor.db", "sqlite://", "sqlite:///:memory:",
            "postgresql://u:pw@db.example.org/monitor", "postgresql://u:pw/monitor",
            "postgresql://u:p@ss@h/db", "postgresql://h:abc/db", "postgresql://[::1/db",
            "mysql://u@h/db", "://", "x", "sqlite:///\x00", "https://feed.example/rss",
            "http://127.0.0.1:9/f", "ftp://x", "https://", "http://[::1"],
    "path": ["seeds", "/abs/seeds", "", "\x00", "../x"],
    "level": ["INFO", "debug", "TRACE", ""], "format": ["text", "json", "xml"],
    "user_agent": ["monitor/1", "", "a\nb", " "],
    "max_feed_bytes": ["10 MiB", "5MB", "1 KiB", "1023", "10 XB", 1024, -1, 10**30],
    "max_page_bytes": ["5 MiB", "0", 2048],
    "allow_private": [["10.0.0.0/8"], ["*.intranet.example"], ["::1/999"], [""], [1], "10/8"],
    "host_delay": ["1s", 0, 0.5, -1, math.inf, math.nan, 1e308, "1h"],
    "jitter": [0.1, 0.5, 0.51, -0.1, math.nan, math.inf],
    "listen": ["127.0.0.1:9464", "[::1]:0", "", ":80", "host:", "host:٣", "host:¹", "h:99999",
               "h:" + "9" * 5000],
    "jaccard": [0.5, 1, 0, 1.5, math.nan], "containment": [0.7, 1.0, -0.0],
    "boilerplate": [["listen to this.*"], ["(?i)x"], ["a{99999999999}"], ["(" * 1000 + ")" * 1000],
                    ["(?P<x>a)", "(?P<x>b)"], ["["], [""], [3]],
    "schedule": ["0 7 * * *", "*/5 * * * *", "0 7 * * mon-fri", "0 7 * * 8", "0 7 */0 * *",
                 "0 7 */¹ * *", "0 ¹ * * *", "0 7 * * *", "1-2-3 * * * *", "5-1 * * * *", "*"],
    "timezone": ["UTC", "America/Caracas", "America", "/", "", ".", "a" * 300, "\x00", "Nope/Zone",
                 "../../etc/passwd"],
    "sender": ["monitor@example.org", "nobody", "a@b@c", ""],
    "sender_name": ["monitor", "a\nb", ""],
    "host": ["localhost", "127.0.0.1", "smtp.example.org", "", " "],
    "port": [25, 0, 65535, 65536, -1, 10**20],
    "security": ["none", "starttls", "tls", "ssl"],
    "mode": ["default", "fast", "FAST", "", 1],
    "username": ["", "monitor"],
    "password_env": ["MONITOR_SMTP_PASSWORD", "1BAD", "", "A-B"],
    "ca_file": ["", "/nonexistent.pem", "\x00", "."],
    "auth": ["", "env:MONITOR_WEB_TOKEN", "env:", "env:1BAD", "hunter2", "$2b$12$" + "a" * 53,
             "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "$2b$12$short"],
    "name": ["teleSUR", "", " ", "x"],
    "category": ["News/World", "", " ", "a" * 101, "tab\there", "Новости"],
    "interval": DURATIONS, "max_interval": DURATIONS, "timeout": DURATIONS,
    "connect_timeout": DURATIONS, "default_interval": DURATIONS, "backoff_base": DURATIONS,
    "backoff_max": DURATIONS, "config_check": DURATIONS, "shutdown_timeout": DURATIONS,
    "lease": DURATIONS, "retry_max": DURATIONS, "page_retry": DURATIONS,
    "page_retry_max": DURATIONS, "page_attempts": [1, 4, 0, -1, "4"],
    "query": ["Maduro", 'Maduro OR "Delcy Rodriguez"', "(" * 5000, "NOT " * 3000 + "x", "-x", "",
              "title:(a OR b)", "\x00"],
    "recipients": [["desk@example.org"], [], ["nobody"], [1], "desk@example.org"],
    "enabled": [True, False], "alert_backlog": [True, False, "no"],
    "max_age": ["3d", "0", 0, 86400, -1, "1.5d", 10**30],
}
FEED_URLS = ["https://feed.example/rss", "http://127.0.0.1:9/f.rss", "ftp://x", "https://", "x",
             "http://[::1", "https://a.com:99999/"]


class TooLong:
    """An integer literal too long for int() (4300 digits): tomllib raises ValueError."""

    def __repr__(self) -> str:
        return "TooLong()"


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, TooLong()]),
    st.floats(allow_nan=True, allow_infinity=True),
    no_surrogates(30),
    st.sampled_from(DURATIONS),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["a", "url", "name", "x y"]), inner,
                                            max_size=2)),
    max_leaves=5,
)


def value_for(key: str) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(key)
    if key == "url":
        plausible = PLAUSIBLE["url"] + FEED_URLS
    if plausible is None:
        return toml_values
    return st.one_of(st.sampled_from(plausible), st.sampled_from(plausible), toml_values)


@st.composite
def config_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section, keys in SECTIONS.items():
        if draw(st.integers(0, 9)) < 4:
            continue
        if draw(st.integers(0, 19)) == 0:
            doc[section] = draw(scalars)  # a section that is no table
            continue
        chosen = draw(st.lists(st.sampled_from([*keys, "bogus"]), unique=True, max_size=4))
        doc[section] = {k: draw(value_for(k)) for k in chosen}
    for array, keys in TABLE_ARRAYS.items():
        if draw(st.booleans()):
            continue
        if draw(st.integers(0, 19)) == 0:
            doc[array] = draw(scalars)
            continue
        items = []
        for _ in range(draw(st.integers(0, 3))):
            # Mostly complete items, so that the checks after "is required" run too.
            chosen = [k for k in keys if draw(st.integers(0, 4)) > 0]
            item = {k: draw(value_for(k)) for k in chosen}
            if array == "feeds" and "url" in item and draw(st.booleans()):
                item["url"] = draw(st.sampled_from(FEED_URLS))
            items.append(item)
        doc[array] = items
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.sampled_from(["bogus", "Database", "feed"]))] = draw(toml_values)
    return doc


def toml_string(text: str) -> str:
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, TooLong):
        return "1" * 4500
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    top, tables = [], []
    for name, value in doc.items():
        if isinstance(value, dict):
            tables.append(f"[{toml_string(name)}]")
            tables += [f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for item in value:
                tables.append(f"[[{toml_string(name)}]]")
                tables += [f"{toml_string(k)} = {toml_value(v)}" for k, v in item.items()]
        else:
            top.append(f"{toml_string(name)} = {toml_value(value)}")
    return "\n".join(top + tables) + "\n"


def test_the_fuzzed_keys_are_the_documented_ones() -> None:
    """Every key of the documented config is fuzzed, so a new one is not forgotten here."""
    documented = tomllib.loads((REPO / "config" / "monitor.toml").read_text(encoding="utf-8"))
    for name, value in documented.items():
        known = SECTIONS.get(name) or TABLE_ARRAYS.get(name)
        assert known is not None, name
        for item in value if isinstance(value, list) else [value]:
            assert set(item) <= set(known), (name, set(item) - set(known))
    doc = {"fetch": {"host_delay": math.nan, "allow_private": ["a\x7f\"\\"]},
           "feeds": [{"name": "x", "url": "https://e.org/"}], "bogus": 1}
    loaded = tomllib.loads(toml_document(doc))
    assert math.isnan(loaded["fetch"]["host_delay"]) and loaded["feeds"] == doc["feeds"]
    assert loaded["fetch"]["allow_private"] == ["a\x7f\"\\"] and loaded["bogus"] == 1


def load(content: bytes, environ: dict[str, str]) -> Settings | ConfigError:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed config.toml"
        path.write_bytes(content)
        try:
            s = load_settings(path, environ=environ, base_dir=Path(tmp))
        except ConfigError as err:
            assert str(path) in str(err), str(err)  # names the file
            assert err.file == str(path)
            return err
    assert isinstance(s, Settings)
    json.dumps(s.redacted(), default=str)  # what `config show` prints
    repr(s)
    return s


@FAST
@given(st.one_of(st.binary(max_size=300),
                 st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
@example(b"\xff\xfe")
@example(b"[database]\nurl = 1" + b"1" * 5000)
def test_any_bytes_are_settings_or_a_config_error(content: bytes) -> None:
    load(content, {})


@settings(max_examples=400, deadline=None)
@given(config_docs(), st.sampled_from([{}, {"MONITOR_DATABASE_URL": "postgresql://u:p@h:abc/db"},
                                      {"MONITOR_DATABASE_URL": "sqlite://"},
                                      {"MONITOR_SMTP_PASSWORD": "pw"}]))
def test_any_config_document_is_settings_or_a_config_error(doc: dict[str, Any],
                                                           environ: dict[str, str]) -> None:
    text = toml_document(doc)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise  # a bug of toml_document: the fuzzing would test the TOML parser only
    except ValueError:
        pass  # an integer too long to convert: load_settings must say so too
    load(text.encode("utf-8"), environ)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([
    ("fetch", "timeout", "1" + "0" * 400 + "s"), ("smtp", "timeout", "99999999999999999999d"),
    ("fetch", "host_delay", math.nan), ("fetch", "host_delay", math.inf),
    ("digest", "timezone", "America"), ("digest", "timezone", "a" * 300),
    ("daemon", "listen", "127.0.0.1:¹"), ("digest", "schedule", "0 7 */¹ * *"),
    ("digest", "schedule", "¹ 7 * * *"), ("dedup", "boilerplate", ["a{99999999999}"]),
    ("dedup", "boilerplate", ["(?i)x"]), ("dedup", "boilerplate", ["(" * 1000 + ")" * 1000]),
    ("database", "url", "postgresql://h:abc/db"), ("poll", "max_interval", "3651d"),
]))
def test_the_values_that_crashed_the_loader_are_config_errors(case: tuple[str, str, Any]) -> None:
    section, key, value = case
    err = load(toml_document({section: {key: value}}).encode(), {})
    assert isinstance(err, ConfigError) and err.key.startswith(f"{section}.{key}"), err


# --- feeds --------------------------------------------------------------------------------------
# parse_feed(body, url, content_type) -> ParsedFeed, or FeedParseError. An entry's guid is
# a non-empty string, its link None or an absolute http(s) URL, and no text holds a
# control character XML forbids (NUL above all: PostgreSQL refuses it).

FEED_URL = "https://feed.example.org/rss"
CONTROLS = {chr(c) for c in range(0x20)} - {"\t", "\n", "\r"}
CONTENT_TYPES = [None, "application/rss+xml", "application/atom+xml", "text/html",
                 "text/xml; charset=koi8-r", "application/xml; charset=bogus", "text/plain", "\x00"]


def check_feed(result: ParsedFeed | FeedParseError) -> None:
    if isinstance(result, FeedParseError):
        assert result.url == FEED_URL and result.reason
        return
    assert isinstance(result, ParsedFeed)
    assert isinstance(result.version, str)
    for text in (result.title, result.language):
        assert text is None or (isinstance(text, str) and not CONTROLS & set(text))
    for e in result.entries:
        check_entry(e)


def check_entry(e: FeedEntry) -> None:
    assert isinstance(e.guid, str) and e.guid and e.guid == e.guid.strip()
    if e.link is not None:
        parts = urlsplit(e.link)
        assert parts.scheme.lower() in ("http", "https"), e.link
        assert parts.hostname, e.link
        assert parts.port is None or 0 <= parts.port <= 65535
    for text in (e.guid, e.link, e.title, e.author, e.content, e.summary):
        assert text is None or (isinstance(text, str) and not CONTROLS & set(text)), repr(text)
    assert e.published_at is None or (isinstance(e.published_at, datetime)
                                      and e.published_at.tzinfo is not None)


def parsed(body: bytes, content_type: str | None = None) -> ParsedFeed | FeedParseError:
    try:
        return parse_feed(body, FEED_URL, content_type)
    except FeedParseError as err:
        return err


@SLOW
@given(st.binary(max_size=400), st.sampled_from(CONTENT_TYPES))
@example(b"", None)
@example(b"\x00" * 10, "application/rss+xml")
@example(b'{"version": "https://jsonfeed.org/version/1.1"}', None)
def test_any_bytes_are_a_feed_or_a_feed_parse_error(body: bytes, content_type: str | None) -> None:
    check_feed(parsed(body, content_type))


LINKS = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "&#106;avascript:x",
         "java&#x09;script:x", "data:text/html,<script>x</script>", "vbscript:x", "mailto:a@b.org",
         "file:///etc/passwd", "ftp://x.org/y", "/relative/path", "relative", "//cdn.example/p",
         "?q=1", "#frag", "http://[::1", "http://a.org:99999/", "https://", "http:foo", "", "   ",
         "http://a.org/\x00x", "https://example.org/story?id=1&amp;utm_source=rss",
         "https://example.org/" + "a" * 5000, "<![CDATA[https://example.org/cdata]]>",
         "https://exämple.org/ü"]
DATES = ["Tue, 06 Jan 2026 10:00:00 GMT", "Tue, 99 Foo 99999 99:99:99 XYZ", "0000-00-00T00:00:00Z",
         "9999-12-31T23:59:59Z", "-1", "1e400", "", "\x00", "2026-13-45", "Mon, 01 Jan 0001 00:00:00 +9999",
         "99999999999999999999", "2026-01-06T10:00:00+25:00"]
ENTITIES = ["&amp;", "&lt;", "&#0;", "&#1;", "&#xD800;", "&#x110000;", "&#99999999999;", "&nbsp;",
            "&undefined;", "&#x1F600;", "]]>", "<![CDATA[x]]>", "<b>", "<script>alert(1)</script>",
            "<!-- c -->", "\x00", "\x0b", "\u202e"]
xml_ish = st.lists(st.one_of(st.sampled_from(ENTITIES), no_surrogates(12)), max_size=8).map("".join)
field_values = st.one_of(st.none(), xml_ish, st.sampled_from(["", " ", "x" * 100_000]))


@st.composite
def feed_items(draw: st.DrawFn) -> dict[str, str | None]:
    return {
        "title": draw(field_values),
        "link": draw(st.one_of(st.none(), st.sampled_from(LINKS), xml_ish)),
        "guid": draw(st.one_of(st.none(), st.sampled_from(["", " ", "g1", "g1", "http://x.org/1"]),
                               xml_ish)),
        "date": draw(st.one_of(st.none(), st.sampled_from(DATES), xml_ish)),
        "summary": draw(field_values),
        "content": draw(field_values),
        "author": draw(field_values),
    }


def element(tag: str, value: str | None, attrs: str = "") -> str:
    return "" if value is None else f"<{tag}{attrs}>{value}</{tag}>"


def rss_body(items: list[dict[str, str | None]], prolog: str) -> str:
    out = []
    for i in items:
        out.append("<item>" + element("title", i["title"]) + element("link", i["link"])
                   + element("guid", i["guid"]) + element("pubDate", i["date"])
                   + element("description", i["summary"])
                   + element("content:encoded", i["content"]) + element("author", i["author"])
                   + "</item>")
    return (f'{prolog}<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            f"<channel><title>Fuzz</title><language>en-GB</language>{''.join(out)}</channel></rss>")


def atom_body(items: list[dict[str, str | None]], prolog: str) -> str:
    out = []
    for i in items:
        link = "" if i["link"] is None else f'<link rel="alternate" href="{i["link"]}"/>'
        out.append("<entry>" + element("title", i["title"], ' type="html"') + link
                   + element("id", i["guid"]) + element("updated", i["date"])
                   + element("summary", i["summary"], ' type="html"')
                   + element("content", i["content"], ' type="html"')
                   + element("author", None if i["author"] is None else f"<name>{i['author']}</name>")
                   + "</entry>")
    return (f'{prolog}<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr"><title>Fuzz</title>'
            f"<id>urn:fuzz</id>{''.join(out)}</feed>")


PROLOGS = ['<?xml version="1.0" encoding="utf-8"?>', "", '<?xml version="1.0"?>\n',
           '<?xml version="1.0" encoding="windows-1251"?>',
           '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x "&#106;avascript:y">]>',
           '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e SYSTEM "file:///etc/passwd">]>']


@SLOW
@given(st.lists(feed_items(), min_size=1, max_size=4), st.sampled_from(["rss", "atom"]),
       st.sampled_from(PROLOGS), st.sampled_from(CONTENT_TYPES))
def test_hostile_feed_fields_map_to_safe_entries(items: list[dict[str, str | None]], kind: str,
                                                 prolog: str, content_type: str | None) -> None:
    body = (rss_body if kind == "rss" else atom_body)(items, prolog)
    result = parsed(body.encode("utf-8"), content_type)
    check_feed(result)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), xml_ish),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["name", "url", "x"]), inner,
                                            max_size=3)),
    max_leaves=6)


@st.composite
def json_feed_items(draw: st.DrawFn) -> object:
    item = draw(feed_items())
    fields = {"title": item["title"], "url": item["link"], "external_url": draw(xml_ish),
              "id": item["guid"], "date_published": item["date"],
              "date_modified": draw(st.sampled_from(DATES)), "summary": item["summary"],
              "content_html": item["content"], "content_text": draw(field_values),
              "authors": [{"name": item["author"]}], "author": draw(json_values)}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    out: dict[str, object] = {k: fields[k] for k in chosen}
    for k in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        out[k] = draw(json_values)  # a value of the wrong kind
    return draw(st.one_of(st.just(out), json_values)) if draw(st.integers(0, 9)) == 0 else out


@SLOW
@given(st.lists(json_feed_items(), max_size=4),
       st.sampled_from(["https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1",
                        None, 1, "https://jsonfeed.org/version/9"]),
       json_values, st.sampled_from(["application/feed+json", "application/json", None]))
def test_hostile_json_feed_fields_map_to_safe_entries(items: list[object], version: object,
                                                      extra: object,
                                                      content_type: str | None) -> None:
    doc = {"version": version, "title": extra, "language": extra, "items": items}
    check_feed(parsed(json.dumps(doc).encode(), content_type))


@settings(max_examples=len(LINKS), deadline=None)
@given(st.sampled_from(LINKS), st.sampled_from(["rss", "atom"]))
def test_an_entry_link_is_an_http_url_or_none(link: str, kind: str) -> None:
    item: dict[str, str | None] = {"title": "A story", "link": link, "guid": "g1", "date": None,
                                   "summary": None, "content": None, "author": None}
    result = parsed((rss_body if kind == "rss" else atom_body)([item], PROLOGS[0]).encode())
    assert isinstance(result, ParsedFeed) and result.entries
    check_feed(result)
    [entry] = result.entries
    if "script" in link.lower() or link.startswith(("data:", "mailto:", "file:", "ftp:")):
        assert entry.link is None, entry.link


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["author", "managingEditor", "webMaster", "dc:creator", "dc:publisher",
                        "itunes:author"]), st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_a_huge_author_takes_no_quadratic_time(tag: str, encoding: str) -> None:
    """feedparser's e-mail regex is quadratic in an RSS author's length: 200,000 characters
    took minutes (a worker process busy for all that time), and a feed may be 10 MiB."""
    huge = "x" * 200_000
    body = (f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>F</title>'
            f"<{tag}>{huge}</{tag}><item><title>T</title><guid>g</guid><{tag}>{huge}</{tag}>"
            f"<author>Jane Doe</author></item></channel></rss>").encode(encoding)
    started = time.monotonic()
    result = parsed(body)
    assert time.monotonic() - started < 5
    assert isinstance(result, ParsedFeed)
    check_feed(result)
    [entry] = result.entries
    assert entry.title == "T" and (entry.author or "") != huge


# --- the pipeline's entry-to-item mapping --------------------------------------------------------
# choose_text(entry, article, min_chars) -> (text, source): the page's text when it is long
# enough, else the longest of the feed's content and summary and the short page text,
# else the title; "none" with no text at all.

opt_text = st.one_of(st.none(), st.text(max_size=40))


@FAST
@given(st.builds(FeedEntry, guid=st.just("g"), link=st.none(), title=opt_text, author=st.none(),
                 published_at=st.none(), content=opt_text, summary=opt_text),
       st.one_of(st.none(), st.builds(Article, text=st.text(max_size=60), title=opt_text,
                                      author=st.none(), published_at=st.none(),
                                      language=st.none(), site_name=st.none(),
                                      canonical_url=st.none())),
       st.integers(min_value=1, max_value=50))
def test_choose_text_picks_a_text_and_names_its_source(entry: FeedEntry, article: Article | None,
                                                       min_chars: int) -> None:
    text, source = choose_text(entry, article, min_chars)
    candidates = {"page": article.text if article else None, "feed_content": entry.content,
                  "feed_summary": entry.summary, "title": entry.title, "none": ""}
    assert source in candidates and text == candidates[source]
    assert (source == "none") == (text == "")
    if article is not None and len(article.text) >= min_chars:
        assert source == "page"
    elif source != "title":
        lengths = [len(entry.content or ""), len(entry.summary or ""),
                   len(article.text) if article else 0]
        assert len(text) == max(lengths)


# --- alert channel payloads -------------------------------------------------------------------

def _channel_kinds() -> list[Any]:
    from monitor.config.channels import ChannelSettings

    return [ChannelSettings(name="c", kind="webhook", url="https://h.example/in", secret="k"),
            ChannelSettings(name="c", kind="slack", url="https://hooks.slack.com/x"),
            ChannelSettings(name="c", kind="mattermost", url="https://m.example/hooks/x"),
            ChannelSettings(name="c", kind="matrix", url="https://mx.example", room="!r:mx",
                            token="t"),
            ChannelSettings(name="c", kind="ntfy", url="https://n.example", topic="t")]


@SLOW
@given(st.lists(st.tuples(nasty_text, st.one_of(st.none(), nasty_text,
                                                st.just("https://a.example/x?a=1&b=<2>")),
                          nasty_text, nasty_text, nasty_text), min_size=1, max_size=5),
       st.one_of(st.none(), nasty_text), st.booleans())
def test_channel_payloads_survive_hostile_articles(
        articles: list[tuple[str, str | None, str, str, str]], story_title: str | None,
        follow_up: bool) -> None:
    """Whatever a feed put in a title, link, outlet, category or snippet: every kind of
    channel gets valid JSON, one-line headers, and (Slack) no markup but its own links."""
    from datetime import UTC

    from monitor.channels.payloads import Notice, Report, build

    reports = tuple(Report(i + 1, rule or "r", i + 1, title, url, feed or "f", category or None,
                           datetime(2026, 12, 7, tzinfo=UTC), snippet, (rule,))
                    for i, (title, url, feed, category, snippet) in enumerate(articles)
                    for rule in ("r",))
    notice = Notice("c", "monitor-k", 1, story_title, follow_up, reports,
                    datetime(2026, 12, 7, tzinfo=UTC))
    for channel in _channel_kinds():
        request = build(channel, notice, 1_796_000_000)
        body = json.loads(request.body)
        assert all("\r" not in v and "\n" not in v for _, v in request.headers)
        if channel.kind == "slack":
            for block in body["blocks"][1:]:
                if block["type"] == "section":
                    text = block["text"]["text"]
                    assert text.count("<") == text.startswith("*<")  # only a link's
        if channel.kind == "webhook":
            for a in body["articles"]:
                assert a["title"] and not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f
                                              for c in a["title"])
                assert a["url"] is None or a["url"].startswith("https://")
