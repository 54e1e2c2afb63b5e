"""Build ``monitor/stories/prior_df.json.gz``: the document frequencies stories start
from, so that the first articles a fresh database stores are weighted sensibly.

    .venv/bin/python benchmarks/stories_prior.py

Counted over a general news corpus that is not the stories' evaluation set (ECB+):
the 181 article bodies of ../shared/corpus/pages (ground truth) and the titles and
summaries of the 6,555 entries of the 200 feeds in ../shared/corpus/feeds (both MIT
licensed, see their LICENSE files). Terms seen in at least two documents are kept.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import sys
from collections import Counter
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from monitor.stories.signals import terms  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
TAG = re.compile(r"<[^>]+>")


def documents() -> list[tuple[str | None, str]]:
    truth = json.loads((CORPUS / "pages" / "ground-truth.json").read_text(encoding="utf-8"))
    docs: list[tuple[str | None, str]] = [(None, t["articleBody"]) for t in truth.values()]
    for path in sorted((CORPUS / "feeds").glob("*.xml.gz")):
        for e in feedparser.parse(gzip.decompress(path.read_bytes())).entries:
            summary = html.unescape(TAG.sub(" ", e.get("summary") or ""))
            if len(summary) + len(e.get("title") or "") > 40:
                docs.append((e.get("title"), summary))
    return docs


def main() -> None:
    docs = documents()
    df: Counter[str] = Counter()
    for title, text in docs:
        df.update(terms(title, text).all.keys())
    kept = {t: n for t, n in sorted(df.items()) if n >= 2}
    out = ROOT / "monitor" / "stories" / "prior_df.json.gz"
    out.write_bytes(gzip.compress(json.dumps({"docs": len(docs), "df": kept},
                                             ensure_ascii=False, separators=(",", ":"))
                                  .encode(), mtime=0))
    print(f"{len(docs)} documents, {len(kept)} terms -> {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
