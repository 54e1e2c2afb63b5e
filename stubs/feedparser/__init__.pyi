# Local stub: feedparser ships no type information. Only what monitor uses.
from typing import Any

class FeedParserDict(dict[str, Any]):
    def __getattr__(self, name: str) -> Any: ...

def parse(
    url_file_stream_or_string: Any,
    etag: str | None = ...,
    modified: Any = ...,
    agent: str | None = ...,
    referrer: str | None = ...,
    handlers: Any = ...,
    request_headers: dict[str, str] | None = ...,
    response_headers: dict[str, str] | None = ...,
    resolve_relative_uris: bool | None = ...,
    sanitize_html: bool | None = ...,
) -> FeedParserDict: ...
