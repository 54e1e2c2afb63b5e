"""The extraction pool: replaced after its task budget without losing or hanging work."""

from __future__ import annotations

import asyncio

import pytest

from monitor.errors import ExtractionError
from monitor.ingest.extract_pool import Processor


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
    try:
        titles = asyncio.run(_extract_all(processor, 30))
    finally:
        processor.close()
    assert titles == [f"Article {i}" for i in range(30)]
    # 30 tasks, 6 per pool: five pools, each started after the last one's budget.
    assert processor.pools_started == 5


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
