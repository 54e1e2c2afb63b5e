"""The extraction pool: workers replaced after their task budget without losing or
hanging work; a task bounded in time; a dead worker failing only its own task."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import ExtractionError
from monitor.ingest.extract_pool import Processor, WorkerDied


def _page(i: int) -> bytes:
    # Large enough (about 200 KB) that a queued task fills the pipe to a worker: that is
    # when ProcessPoolExecutor's own max_tasks_per_child deadlocked on Python 3.11.
    paras = "".join(f"<p>Paragraph {k} of article {i}: " + "word " * 60 + "</p>"
                    for k in range(600))
    return f"<html lang=en><head><title>Article {i}</title></head><body><article>" \
           f"<h1>Article {i}</h1>{paras}</article></body></html>".encode()


async def _extract_all(processor: Processor, n: int) -> list[str]:
    async def one(i: int) -> str:
        return (await processor.extract(_page(i), f"http://example.org/{i}")).title or ""
    return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 120)


def test_workers_are_replaced_after_their_budget_and_no_task_is_lost() -> None:
    processor = Processor(workers=2, max_tasks_per_worker=3)

    async def run() -> tuple[list[str], set[int]]:
        titles = await _extract_all(processor, 30)
        pids = await asyncio.gather(*(processor.call(os.getpid) for _ in range(12)))
        return titles, set(pids)

    try:
        titles, pids = asyncio.run(run())
    finally:
        processor.close()
    assert titles == [f"Article {i}" for i in range(30)]
    # 12 calls at 3 tasks per worker: at least four workers served them.
    assert len(pids) >= 4


def test_a_bad_page_is_an_extraction_error_and_the_pool_goes_on() -> None:
    processor = Processor(workers=1, max_tasks_per_worker=2)

    async def run() -> tuple[str | None, str | None]:
        with pytest.raises(ExtractionError):
            await processor.extract(b"", "http://example.org/empty")
        good = await processor.extract(_page(1), "http://example.org/1")
        again = await processor.extract(_page(2), "http://example.org/2")
        return good.title, again.title

    try:
        assert asyncio.run(run()) == ("Article 1", "Article 2")
    finally:
        processor.close()


def test_a_task_past_the_timeout_is_stopped_and_fails_alone() -> None:
    # A page or feed that sends the parser into a loop stands in for by a sleep: before
    # the bound, it held its worker (and its feed's lease) for as long as it ran.
    processor = Processor(workers=2, timeout=2)

    async def run() -> tuple[float, list[str]]:
        started = time.monotonic()
        hung = asyncio.ensure_future(processor.call(time.sleep, 600))
        pages = asyncio.gather(*(processor.extract(_page(i), f"http://example.org/{i}")
                                 for i in range(6)))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(hung, 30)
        took = time.monotonic() - started
        titles = [a.title or "" for a in await asyncio.wait_for(pages, 60)]
        return took, titles

    try:
        took, titles = asyncio.run(run())
    finally:
        processor.close()
    assert took < 10
    assert titles == [f"Article {i}" for i in range(6)]


def test_a_worker_that_dies_fails_only_its_own_task() -> None:
    processor = Processor(workers=2)

    async def run() -> list[str]:
        await processor.call(os.getpid)  # the pool is up
        dying = asyncio.ensure_future(processor.call(os._exit, 9))
        pages = asyncio.gather(*(processor.extract(_page(i), f"http://example.org/{i}")
                                 for i in range(6)))
        with pytest.raises(WorkerDied, match="exit code 9"):
            await asyncio.wait_for(dying, 30)
        return [a.title or "" for a in await asyncio.wait_for(pages, 60)]

    try:
        assert asyncio.run(run()) == [f"Article {i}" for i in range(6)]
    finally:
        processor.close()


MODES = Path(__file__).parent / "fixtures" / "extract_modes"


def _f1(truth: str, got: str) -> float:
    want, have = Counter(re.findall(r"\w+", truth.lower())), Counter(re.findall(r"\w+", got.lower()))
    common = sum(min(n, have[t]) for t, n in want.items())
    if not common:
        return 0.0
    precision, recall = common / sum(have.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize(("key", "better"), [
    # trafilatura's fallback extractors find this page's article; its own does not
    ("f6ac15a4d98511396da23e4428deb5605422b1c8bbc8284e771f6896bdccf57f", "default"),
    # here the fallback's longer text is mostly the page's chrome
    ("b3c19dd5f0612d098788fa5173e491b3280da6226b492f8fe110f4ab1896cca8", "fast"),
])
def test_extract_mode_reaches_the_workers(tmp_path: Path, key: str, better: str) -> None:
    """``[extract] mode`` is what the worker processes run: the two pages where the
    modes differ most on the corpus (benchmarks/extract_quality.py) come out of each
    as they do there."""
    truth = json.loads((MODES / "ground-truth.json").read_text(encoding="utf-8"))[key]
    html = gzip.decompress((MODES / f"{key}.html.gz").read_bytes())
    scores = {}
    for mode in ("default", "fast"):
        config = tmp_path / f"{mode}.toml"
        config.write_text(f'[extract]\nworkers = 1\nmode = "{mode}"\n')
        processor = Processor.of(load_settings(config, environ={}, base_dir=tmp_path).extract)
        try:
            article = asyncio.run(processor.extract(html, truth["url"]))
        finally:
            processor.close()
        scores[mode] = _f1(truth["articleBody"], article.text)
    worse = "fast" if better == "default" else "default"
    assert scores[better] > 0.8
    assert scores[better] - scores[worse] > 0.3, scores


def _imported(name: str) -> bool:
    import sys

    return name in sys.modules


@pytest.mark.parametrize("started", [True, False])
def test_a_started_pool_has_trafilatura_imported_before_its_first_task(started: bool) -> None:
    """Processor.start (called at start-up when pages wait) makes the workers import
    trafilatura at once; without it, nothing is imported until a page comes."""
    processor = Processor(workers=1)
    try:
        if started:
            processor.start()
        assert asyncio.run(processor.call(_imported, "trafilatura")) is started
    finally:
        processor.close()
