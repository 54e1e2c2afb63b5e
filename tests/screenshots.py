"""``make screenshots``: the review page's Today, Story and Feeds pages as headless
Chromium draws them, for the README (docs/web-today.png, web-story.png,
web-feeds.png). The site is the browser tests' own (tests/review_site.py: real articles
on a local server, stored by a real ``run --once`` into a SQLite file), so nothing
reaches the network. Run it after changing a template or the stylesheet:

    .venv/bin/python tests/screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import review_site  # found through the path set above
from browser import launch
from conftest import LocalServer

WIDTH = 1200
STORY = "Robbers in drag"  # two outlets, one exact copy: the Story page's every part


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    server = LocalServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            # In a thread: run --once runs an event loop of its own, Playwright's too.
            with ThreadPoolExecutor(1) as pool:
                config = pool.submit(review_site.build, server, tmp,
                                     f"sqlite:///{tmp / 'monitor.db'}").result()
            with review_site.serving(config, tmp / "web.log") as base, launch() as browser:
                page = browser.new_page(viewport={"width": WIDTH, "height": 800})
                page.goto(f"{base}/")
                story = page.locator("article.story h3 a", has_text=STORY).get_attribute("href")
                shots = {"web-today.png": "/", "web-story.png": story or "/",
                         "web-feeds.png": "/feeds"}
                for name, path in shots.items():
                    page.goto(base + path)
                    page.screenshot(path=str(out / name), full_page=True)
                    print(f"wrote {out / name}")
    finally:
        server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "docs")
