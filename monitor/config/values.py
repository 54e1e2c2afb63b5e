"""Reading one TOML table: typed keys, durations, sizes, and errors that name the
file, the key and the reason (:class:`Table`). Used by every section's parser."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from monitor.errors import ConfigError

T = TypeVar("T")


class Table:
    """One TOML table being validated; remembers which keys were read."""

    def __init__(self, file: str, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, name, f"must be a table, not {type_name(data)}")
        self.file, self.name, self.data = file, name, data
        self.used: set[str] = set()
        self.about: str | None = None  # what the table is, for errors: "feed 'Reuters'"

    def key(self, k: str) -> str:
        return f"{self.name}.{k}" if self.name else k

    def fail(self, k: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.key(k), reason, about=self.about)

    def get(self, k: str, typ: type[T], default: T | None = None, required: bool = False) -> T:
        self.used.add(k)
        if k not in self.data:
            if required or default is None:
                raise self.fail(k, "is required")
            return default
        value = self.data[k]
        # TOML has no bool/int ambiguity, but Python's bool is an int: reject it explicitly.
        ok = isinstance(value, typ) and not (typ in (int, float) and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.fail(k, f"must be {type_name_of(typ)}, not {type_name(value)}")
        return value  # type: ignore[no-any-return]

    def check(self, k: str, value: T, test: Callable[[T], bool], reason: str) -> T:
        if not test(value):
            raise self.fail(k, reason)
        return value

    def section(self, k: str) -> Table:
        """The table at key ``k`` (empty when absent), to validate on its own."""
        self.used.add(k)
        return Table(self.file, self.key(k), self.data.get(k, {}))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(unknown[0], f"unknown key (known keys: {', '.join(sorted(self.used))})")


def type_name_of(typ: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "an array", dict: "a table"}.get(typ, typ.__name__)


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type_name_of(type(value))


_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The longest duration: past it, float seconds, datetime arithmetic and the 32-bit
# interval columns would overflow.
MAX_DURATION = 3650 * 86400


def parse_duration(text: str) -> int:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, or ``"900"`` (seconds) -> seconds, at most
    3650d. Raises ValueError."""
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like \"90s\", \"15m\", \"2h\", \"1d\" "
                         "or a number of seconds")
    seconds = int(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]
    if seconds > MAX_DURATION:
        raise ValueError(f"{text.strip()!r} is longer than {MAX_DURATION // 86400}d")
    return seconds


_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
               "gb": 1000**3, "gib": 1024**3}


def parse_size(value: int | str) -> int:
    """``10485760``, ``"10 MiB"``, ``"5MB"`` -> bytes. Raises ValueError."""
    if isinstance(value, int):
        return value
    m = _SIZE_RE.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a size like 5242880, \"5 MiB\" or \"500 KB\"")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]


EMAIL_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


def duration(t: Table, k: str, default: int, minimum: int = 1) -> int:
    """A duration string (``"15m"``) or a whole number of seconds (``900``)."""
    t.used.add(k)
    if k not in t.data:
        return default
    value = t.data[k]
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise t.fail(k, str(exc)) from None
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_DURATION:
        seconds = value
    else:
        shown = repr(value) if isinstance(value, int | float) and not isinstance(value, bool) \
            else type_name(value)
        raise t.fail(k, f"must be a duration like \"15m\" or a whole number of seconds, "
                        f"not {shown}")
    return t.check(k, seconds, lambda s: s >= minimum, f"must be at least {minimum}s")


def seconds(t: Table, k: str, default: float) -> float:
    """A duration string, or a number of seconds (fractions allowed), at least 0."""
    t.used.add(k)
    value = t.data.get(k, default)
    if isinstance(value, str):
        try:
            return float(parse_duration(value))
        except ValueError as exc:
            raise t.fail(k, str(exc)) from None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 <= value <= MAX_DURATION or not math.isfinite(value):
        raise t.fail(k, "must be a duration like \"2s\" or a number of seconds, at least 0")
    return float(value)


def size(t: Table, k: str, default: int) -> int:
    t.used.add(k)
    if k not in t.data:
        return default
    value = t.data[k]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise t.fail(k, f"must be a byte count or a size string, not {type_name(value)}")
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise t.fail(k, str(exc)) from None
    return t.check(k, size, lambda s: s >= 1024, "must be at least 1 KiB")


def positive(t: Table, k: str, default: int, minimum: int = 1) -> int:
    return t.check(k, t.get(k, int, default), lambda v: v >= minimum, f"must be >= {minimum}")
