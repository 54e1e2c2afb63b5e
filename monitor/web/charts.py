"""Small inline SVG charts (pure): drawn by the server, so the page needs no script
and loads nothing. Every number in them is also in their ``<title>`` (a tooltip, and
what a screen reader says)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape


def daily_bars(counts: Sequence[int], first_day: date, *, width: int = 140,
               height: int = 28) -> str:
    """Items per day as bars, oldest left; a day with none is a thin grey tick."""
    n = max(1, len(counts))
    top = max(counts, default=0) or 1
    step = width / n
    bars = []
    for i, c in enumerate(counts):
        day = first_day + timedelta(days=i)
        h = max(1.0, (height - 2) * c / top) if c else 1.0
        x = i * step + 1
        cls = "bar" if c else "bar none"
        bars.append(f'<rect class="{cls}" x="{x:.1f}" y="{height - h:.1f}" '
                    f'width="{max(1.0, step - 2):.1f}" height="{h:.1f}">'
                    f"<title>{day:%d %b}: {c} item{'' if c == 1 else 's'}</title></rect>")
    total = sum(counts)
    label = (f"{total} items in the last {len(counts)} days, "
             f"at most {max(counts, default=0)} a day")
    return (f'<svg class="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(bars)}</svg>")


def timeline(points: Sequence[tuple[float, str]], *, width: int = 560, height: int = 36) -> str:
    """One dot per report on a time axis (``points``: unix seconds and a label), the
    first report at the left edge and the latest at the right."""
    if not points:
        return ""
    lo = min(t for t, _ in points)
    hi = max(t for t, _ in points)
    span = hi - lo or 1.0
    dots = []
    for t, label in points:
        x = 8 + (width - 16) * (t - lo) / span
        dots.append(f'<circle class="dot" cx="{x:.1f}" cy="{height / 2:.1f}" r="5">'
                    f"<title>{escape(label)}</title></circle>")
    return (f'<svg class="chart timeline" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-label="{len(points)} reports over time">'
            f'<line class="axis" x1="8" y1="{height / 2:.1f}" x2="{width - 8}" '
            f'y2="{height / 2:.1f}"/>{"".join(dots)}</svg>')
