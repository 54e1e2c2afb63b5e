"""OPML, the feed list every feed reader imports and exports: read one into outlines,
write the configured feeds as one (pure: bytes in, values out, and back).

Reading is lenient about what readers write (folders nested any depth, ``xmlUrl`` in
any letter case, ``text`` or ``title``, OPML 1.0 and 2.0, any encoding the XML
declaration names) and safe about what a stranger's file may hold: no external DTD
or network is read, and a file with an entity bomb or an external entity, that is no
XML, or XML but no OPML, is an :class:`OpmlError` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from monitor.config import MAX_CATEGORY_CHARS
from monitor.errors import OpmlError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Outline:
    """A feed of an OPML file."""

    title: str  # its text or title; "" when it has neither
    url: str  # xmlUrl, as written (stripped)
    site: str | None  # htmlUrl
    category: str | None  # its folders, outermost first, joined with "/"


@dataclass(frozen=True)
class Listed:
    """A feed to write out."""

    name: str
    url: str
    category: str | None = None


def read(data: bytes) -> list[Outline]:
    """Every outline with a feed URL, in document order. Raises OpmlError."""
    from lxml import etree  # lxml: a dependency already (trafilatura)

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"not XML: {exc}") from None
    if root is None or _local(root.tag) != "opml":
        found = _local(root.tag) if root is not None else "nothing"
        raise OpmlError(f"not OPML: the document is <{found}>, not <opml>")
    body = next((c for c in root if _local(c.tag) == "body"), None)
    if body is None:
        raise OpmlError("OPML without a <body>")
    return list(_walk(body, ()))


def _local(tag: Any) -> str:
    """A tag's name without its namespace ("" for a comment or the like)."""
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _attr(element: Any, name: str) -> str | None:
    """An attribute by name in any letter case (xmlUrl, xmlurl, XMLURL), cleaned."""
    for key, value in element.attrib.items():
        if _local(key) == name.lower():
            text = " ".join(_CONTROL.sub("", value).split())
            return text or None
    return None


def _walk(element: Any, folders: tuple[str, ...]) -> Iterator[Outline]:
    for child in element:
        if _local(child.tag) != "outline":
            continue
        title = _attr(child, "text") or _attr(child, "title") or ""
        url = _attr(child, "xmlUrl") or (_attr(child, "url") if _attr(child, "type") in (
            "rss", "atom") else None)
        if url:
            written = _attr(child, "category")
            category = "/".join(folders) if folders else _first_category(written)
            yield Outline(title, url.strip(), _attr(child, "htmlUrl"),
                          (category or "")[:MAX_CATEGORY_CHARS] or None)
        # A folder, or a feed outline with outlines inside (some readers nest so).
        yield from _walk(child, (*folders, title) if not url and title else folders)


def _first_category(written: str | None) -> str | None:
    """OPML 2.0's ``category``: comma-separated slash paths ("/News/World,/Tech"); the first."""
    if not written:
        return None
    first = written.split(",")[0].strip().strip("/")
    return "/".join(p.strip() for p in first.split("/") if p.strip()) or None


def write(feeds: Iterable[Listed], title: str, now: datetime) -> bytes:
    """OPML 2.0: feeds without a category at the top, the others in a folder per
    category (nested at its slashes), each in the order given."""
    tree: dict[str, Any] = {}  # folder name -> subtree; "" -> the feeds at this level
    for f in feeds:
        node = tree
        for part in (f.category or "").split("/"):
            if part.strip():
                node = node.setdefault(part.strip(), {})
        node.setdefault("", []).append(f)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">', "  <head>",
             f"    <title>{_text(title)}</title>",
             f"    <dateCreated>{_text(format_datetime(now))}</dateCreated>", "  </head>",
             "  <body>"]
    lines += _folder(tree, 2)
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _folder(node: dict[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    out = [f'{pad}<outline type="rss" text={_q(f.name)} title={_q(f.name)} '
           f"xmlUrl={_q(f.url)}/>" for f in node.get("", [])]
    for name, sub in node.items():
        if name:
            out.append(f"{pad}<outline text={_q(name)} title={_q(name)}>")
            out += _folder(sub, depth + 1)
            out.append(f"{pad}</outline>")
    return out


def _q(value: str) -> str:
    return quoteattr(_CONTROL.sub("", value), {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _text(value: str) -> str:
    return _q(value)[1:-1]
