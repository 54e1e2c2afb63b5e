"""Canonical URLs: one spelling per article, so the same story is recognised by URL.

Pure: no network. Built on courlan (a trafilatura dependency, maintained with it),
which lower-cases scheme and host, drops default ports, tidies the path and strips
known tracking parameters (utm_*, fbclid, gclid, mc_eid, ...). We add what
courlan leaves to the caller: fragments are dropped and a few extra trackers go.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from courlan import normalize_url, scrub_url

# courlan's list misses a handful still seen in feed links.
_EXTRA_TRACKERS = re.compile(
    r"^(?:_hs(?:enc|mi)|__s|_openstat|at_(?:medium|campaign)|cmpid|icid|mbid|ncid|"
    r"oly_(?:anon|enc)_id|rb_clickid|s_cid|spm|trk|trkcampaign|vgo_ee|wt_mc|wt\.mc_id|"
    r"rss|rssfeed)$",
    re.IGNORECASE,
)


def canonical_url(url: str, base: str | None = None) -> str | None:
    """The canonical form of ``url`` (resolved against ``base`` when relative).

    Returns None when the URL is not an absolute http(s) URL.
    """
    url = url.strip()
    if not url:
        return None
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(scrub_url(url))
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        normalized = normalize_url(parts, strict=False)
    except (ValueError, AttributeError):
        return None
    parts = urlsplit(normalized)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _EXTRA_TRACKERS.match(k)]
    path = parts.path or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def _site(host: str | None) -> str:
    host = (host or "").lower()
    return host[4:] if host.startswith("www.") else host


def choose_canonical(final_url: str, declared: str | None) -> str | None:
    """The canonical URL of a fetched page: its declared ``rel=canonical``/``og:url`` when
    that is plausible, else the final URL after redirects.

    Declarations pointing to another site, or from an article to a site's home
    page (a common template bug), are ignored.
    """
    final = canonical_url(final_url)
    if not declared:
        return final
    claimed = canonical_url(declared, base=final_url)
    if claimed is None or final is None:
        return final or claimed
    f, c = urlsplit(final), urlsplit(claimed)
    if _site(f.hostname) != _site(c.hostname):
        return final
    if c.path in ("", "/") and f.path not in ("", "/"):
        return final
    return claimed
