"""Checking a 5-field cron expression (``[digest] schedule``)."""

from __future__ import annotations

_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a valid 5-field cron expression, or None when it is."""
    parts = expr.split()
    if len(parts) != 5:
        return f"{expr!r} must have 5 fields (minute hour day-of-month month day-of-week)"
    for text, (name, lo, hi, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            rng, _, step = item.partition("/")
            if step and (not (step.isascii() and step.isdigit()) or int(step) == 0):
                return f"{name} field {text!r}: bad step {step!r}"
            if rng == "*":
                continue
            bounds = rng.split("-")
            if len(bounds) > 2:
                return f"{name} field {text!r}: bad range {rng!r}"
            values = []
            for b in bounds:
                v = int(b) if b.isascii() and b.isdigit() else names.get(b.lower())
                if v is None or not lo <= v <= hi:
                    return f"{name} field {text!r}: {b!r} is not in {lo}-{hi}"
                values.append(v)
            if len(values) == 2 and values[0] > values[1]:
                return f"{name} field {text!r}: range {rng!r} runs backwards"
    return None
