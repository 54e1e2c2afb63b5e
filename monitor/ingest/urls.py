"""Canonical URLs: one spelling per article, so the same story is recognised by URL.

Pure: no network. Built on courlan (a trafilatura dependency, maintained with it),
which lower-cases scheme and host, drops default ports, tidies the path and strips
known tracking parameters (utm_*, fbclid, gclid, mc_eid, ...). We add what
courlan leaves to the caller: fragments are dropped and a few extra trackers go.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote_plus, unquote_to_bytes, urljoin, urlsplit, urlunsplit

from courlan import normalize_url, scrub_url
from courlan.clean import TRACKERS_RE

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
    try:
        if base:
            url = urljoin(base, url)  # ValueError for a malformed base or URL ("http://[::1")
        parts = urlsplit(scrub_url(url))
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        _ = parts.port  # ValueError unless the port is a number from 0 to 65535
        # courlan for scheme, host, port and path; the query is ours (see _query).
        normalized = urlsplit(normalize_url(parts._replace(query=""), strict=False))
    except (ValueError, AttributeError):
        return None
    path = normalized.path or "/"
    return urlunsplit((normalized.scheme, normalized.netloc, path, _query(parts.query), ""))


def _query(query: str) -> str:
    """``query`` without trackers, its parameters sorted by name and each spelled one way
    (``+`` for a space, upper-case escapes). Nothing else is lost, so two URLs that differ
    in a parameter stay two: not a parameter without a value (``story.php?123``), nor
    escapes of bytes that are not UTF-8 (``?q=%E9``), as courlan's parse_qs would."""
    params: list[tuple[bytes, str, bytes]] = []
    for param in query.split("&"):
        if not param:
            continue
        raw_name, eq, raw_value = param.partition("=")
        name = unquote_to_bytes(raw_name.replace("+", " "))
        shown = name.decode("utf-8", "replace")
        if TRACKERS_RE.search(shown.lower()) or _EXTRA_TRACKERS.match(shown):
            continue
        params.append((name, eq, unquote_to_bytes(raw_value.replace("+", " "))))
    params.sort(key=lambda p: p[0])  # stable: repeated names keep their order
    return "&".join(quote_plus(name) + eq + quote_plus(value) for name, eq, value in params)


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


_HOST_CHARS = re.compile(r"^[a-z0-9_.-]+$")


def host_problem(host: str) -> str | None:
    """Why no request can be made to ``host`` (as a URL spells it, IDNs in punycode),
    or None: an empty label (``a..b``), a label over 63 characters, a name over 253,
    characters no host name has (``%``, a NUL, a space), or a bracketed IPv6 literal
    that is no address. Every one of these made the system resolver raise where it
    should have said "no such host"."""
    name = host.lower()
    if ":" in name:  # only an IPv6 literal has one
        try:
            ipaddress.IPv6Address(name.strip("[]").split("%")[0])
        except ValueError:
            return f"host {host!r} is not an IPv6 address"
        return None
    name = name[:-1] if name.endswith(".") else name
    if not name or not _HOST_CHARS.match(name):
        return f"host {host!r} is not a host name"
    if len(name) > 253:
        return f"host name of {len(name)} characters (at most 253)"
    if any(not 0 < len(label) <= 63 for label in name.split(".")):
        return f"host {host[:80]!r} has an empty label or one over 63 characters"
    return None
