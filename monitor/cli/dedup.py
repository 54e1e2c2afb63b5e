"""dedup check and dedup reindex."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from monitor.cli.common import EXIT_OK, dump, ref_json, ref_text, session_factory, stored
from monitor.config import Settings
from monitor.errors import InputError

if TYPE_CHECKING:
    from monitor.dedup.decision import Explanation
    from monitor.dedup.index import NearMatch


def read_source(source: str, settings: Settings) -> tuple[str, str | None]:
    """(text, canonical URL) of what ``dedup check`` was given. Raises InputError,
    FetchError or ExtractionError."""
    if source.startswith(("http://", "https://")):
        from monitor.ingest.articles import extract_article
        from monitor.ingest.fetcher import PAGE_ACCEPT, Fetcher
        from monitor.ingest.urls import choose_canonical

        async def fetch() -> tuple[bytes, str]:
            async with Fetcher(settings.fetch) as fetcher:
                page = await fetcher.fetch(source, max_bytes=settings.fetch.max_page_bytes,
                                           accept=PAGE_ACCEPT, trusted=True)  # typed by the user
            return page.body, page.final_url

        body, final_url = asyncio.run(fetch())
        article = extract_article(body, final_url)
        return article.text, choose_canonical(final_url, article.canonical_url)
    try:
        raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc
    head = raw[:1024].lstrip().lower()
    if source.endswith((".html", ".htm")) or head.startswith((b"<!doctype html", b"<html")):
        from monitor.ingest.articles import extract_article

        return extract_article(raw, Path(source).resolve().as_uri()).text, None
    return raw.decode("utf-8", errors="replace"), None


def _scores_json(m: NearMatch) -> dict[str, Any]:
    c = m.candidate
    return {"matched": ref_json(c.ref), "original": ref_json(c.original), "feed": c.feed,
            "title": c.title, "band_hits": c.hits, "jaccard": round(m.scores.jaccard, 4),
            "containment": round(m.scores.containment, 4), "duplicate": m.duplicate}


def cmd_dedup_check(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.dedup.decision import explain
    from monitor.dedup.index import Deduplicator

    text, canonical = read_source(args.source, settings)
    dedup = Deduplicator.from_settings(settings)
    with stored(settings) as s:
        ex = explain(s, dedup, text, canonical)
    d, t = ex.decision, dedup.thresholds
    shown = ex.matches[:max(args.top, 0)]
    if args.json:
        dump({"source": args.source, "verdict": ex.verdict, "duplicate_of": ref_json(d.ref),
              "replaces": ref_json(d.replaces), "similarity": d.similarity,
              "words": ex.words, "boilerplate_lines": list(ex.boilerplate),
              "band_keys": ex.band_keys,
              "thresholds": {"jaccard": t.jaccard, "containment": t.containment,
                             "min_words": t.min_words},
              "matches": [_scores_json(m) for m in shown]}, out)
        return EXIT_OK
    out.write(f"{args.source}: {ex.words} words after dropping {len(ex.boilerplate)} "
              f"boilerplate lines; {ex.band_keys} band keys\n")
    for line in ex.boilerplate:
        out.write(f"  dropped: {line[:100]}\n")
    out.write(f"thresholds: jaccard >= {t.jaccard} or containment >= {t.containment}, "
              f"both texts >= {t.min_words} words\n")
    if not shown:
        out.write("no stored text shares a band key with it\n")
    for i, m in enumerate(shown, 1):
        c = m.candidate
        via = "" if c.original == c.ref else f" (a copy of {ref_text(c.original)})"
        out.write(f"{i:>2}. {'DUPLICATE' if m.duplicate else 'different'}  jaccard "
                  f"{m.scores.jaccard:.3f}  containment {m.scores.containment:.3f}  "
                  f"{c.hits} bands  {ref_text(c.ref)}{via}"
                  f"{' [' + c.feed + ']' if c.feed else ''}: {c.title or '(untitled)'}\n")
    out.write(f"verdict: {_verdict_text(ex)}\n")
    return EXIT_OK


def _verdict_text(ex: Explanation) -> str:
    d = ex.decision
    if d.replaces is not None:
        return (f"new: a fuller copy of {ref_text(d.replaces)}, which it would replace as "
                "the story's original (rules that alerted for the story do not alert again)")
    if d.ref is None:
        return "new (no duplicate)"
    how = {"url": "the same canonical URL", "exact": "the same normalized text",
           "near": "near-duplicate text", "guid": "the same GUID"}.get(d.method or "", d.method)
    return (f"duplicate of {ref_text(d.ref)} by {d.method} ({how})"
            + (f" <{d.ref.url}>" if d.ref.url else ""))


def cmd_dedup_reindex(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    from monitor.dedup.index import Deduplicator

    with session_factory(settings) as sessions:
        n = Deduplicator.from_settings(settings).rebuild_index(sessions, force=True)
    out.write(f"near-duplicate index rebuilt: {n} items and the seeds\n")
    return EXIT_OK
