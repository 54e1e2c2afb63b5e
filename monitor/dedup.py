"""Text fingerprints for deduplication (pure).

Exact dedup compares a hash of the *normalized* text, so that a copy differing
only in case, accents, punctuation or whitespace still counts as the same text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

# Minimum normalized length for a text hash to mean anything: two empty or
# one-line texts are not "the same article".
MIN_HASHABLE_CHARS = 80


def normalize_text(text: str) -> str:
    """Case-folded, accent-free words separated by single spaces.

    "Delcy Rodríguez,  said:" -> "delcy rodriguez said"
    """
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


def text_hash(text: str) -> str | None:
    """SHA-256 (hex) of the normalized text, or None when it is too short to identify."""
    norm = normalize_text(text)
    if len(norm) < MIN_HASHABLE_CHARS:
        return None
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()
