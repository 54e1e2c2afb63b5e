"""What comes in: feeds and pages fetched, parsed and extracted.

    fetcher.py       the only aiohttp user: conditional GET, caps, redirects, host limits
    netguard.py      which addresses an article link may reach (pure)
    feeds.py         feedparser: bytes in, plain entries out (pure)
    html_text.py     plain text from small HTML fragments (pure)
    articles.py      trafilatura extraction and language detection (pure)
    extract_pool.py  the worker processes that run parsing and extraction
    urls.py          canonical URLs (pure)
    cadence.py       when a feed is polled again (pure)
"""
