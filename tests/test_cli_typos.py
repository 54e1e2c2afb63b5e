"""A filter naming a rule, feed or recipient that does not exist is an error that
names the close matches, not an empty answer with exit 0; a case-insensitive match is
taken. Hints are shown only where they apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import Entry, cli, json_lines, rss, write_config

TEXT = "Health officials in the capital reported a new plague case on Monday. " * 6


@pytest.fixture
def config(server: LocalServer, tmp_path: Path, db_url: str) -> Path:
    server.routes["/wire.rss"] = Route(body=rss("Wire", [Entry("Plague case", None,
                                                                guid="p", content=TEXT)]))
    path = write_config(tmp_path / "m.toml", db_url=db_url,
                        feeds=[{"name": "Reuters Wire", "url": server.url("/wire.rss")}],
                        rules=[{"name": "Plague", "query": "plague",
                                "recipients": ["desk@example.org", "health@example.org"]},
                               {"name": "Maduro", "query": "Maduro",
                                "recipients": ["desk@example.org"]}])
    code, out = cli(path, "run", "--once")
    assert code == 0, out
    return path


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def errors(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str]:
    """Exit code and what the command logged (errors go to standard error)."""
    capsys.readouterr()
    code, out = cli(config, *args)
    assert out == ""
    return code, capsys.readouterr().err


def test_names_are_matched_ignoring_case_and_typos_are_errors(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Case-insensitive: the one rule, the one feed.
    assert [a["rule"] for a in json_lines(config, "alerts", "list", "--rule", "plague")] \
        == ["Plague"]
    assert [i["guid"] for i in json_lines(config, "items", "list", "--feed", "reuters wire")] \
        == ["p"]
    # A typo: exit 2 and the close matches; nothing else.
    code, out = errors(capsys, config, "alerts", "list", "--rule", "Plauge")
    assert code == 2 and "--rule 'Plauge': no rule has that name; did you mean 'Plague'?" in out
    code, out = errors(capsys, config, "alerts", "list", "--rule", "Nope")
    assert code == 2 and "the rules are 'Plague', 'Maduro'" in out, out
    code, out = errors(capsys, config, "items", "list", "--feed", "Reuters Wir")
    assert code == 2 and "did you mean 'Reuters Wire'?" in out, out
    code, out = errors(capsys, config, "digest", "preview", "--recipient", "helth@example.org")
    assert code == 2 and "did you mean 'health@example.org'" in out, out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hints_only_where_they_apply(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = errors(capsys, config, "alerts", "list", "--since", "yesterday")
    assert code == 2 and "--since" in out and "check the path or URL" not in out, out
    code, out = errors(capsys, config, "digest", "preview", "--out", "d.eml")
    assert code == 2 and "choose a recipient" in out and "path or URL" not in out, out
    code, out = errors(capsys, config, "dedup", "check", "/nonexistent/file.txt")
    assert code == 2 and "check the path or URL" in out, out  # here it does apply


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_query_starting_with_a_minus_needs_no_double_dash(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(config, "rules", "test", "-Maduro plague", "--since", "all")
    assert code == 0 and "reads: NOT maduro AND plague" in out and "1 of 1" in out, out
    code, out = cli(config, "rules", "test", "--json", "-Maduro plague", "--since=all")
    assert code == 0 and len(out.splitlines()) == 1, out
    # A query that would match nearly everything is the query language's error, not
    # argparse's "unrecognized arguments".
    code, out = errors(capsys, config, "rules", "test", "-Maduro")
    assert code == 2 and "unrecognized" not in out and "Maduro" in out, out
    # Unquoted words: one query, in quotes, is what was meant.
    code, out = errors(capsys, config, "rules", "test", "plague", "-Maduro")
    assert code == 2 and "put it in quotes" in out and "'plague -Maduro'" in out, out
