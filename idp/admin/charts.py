"""Small charts for the admin console as inline SVG: data in, markup out (no script, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from html import escape

WIDTH = 720
HEIGHT = 150
AXIS = 18  # room for the hour labels under the bars


@dataclass(frozen=True)
class Series:
    """One bar per bucket, drawn in its own CSS class (the stylesheet gives the colour)."""

    label: str
    css_class: str
    counts: Sequence[int]


def build_hourly_bars(series: Sequence[Series], *, start: datetime) -> str:
    """Return an SVG bar chart of per-hour counts, one group of bars per hour from ``start``.

    Each bar carries a ``<title>`` (the hour, the series and the count), which browsers show
    on hover and screen readers read, so the numbers are there without any script.
    """
    hours = max((len(item.counts) for item in series), default=0)
    top = max((count for item in series for count in item.counts), default=0) or 1
    slot = WIDTH / max(hours, 1)
    bar = slot * 0.8 / max(len(series), 1)
    plot = HEIGHT - AXIS
    summary = ", ".join(f"{item.label}: {sum(item.counts)}" for item in series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(summary)} in the last {hours} hours">',
        f'<line class="axis" x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}"/>',
    ]
    for hour in range(hours):
        at = start + timedelta(hours=hour)
        x0 = hour * slot + slot * 0.1
        for index, item in enumerate(series):
            count = item.counts[hour] if hour < len(item.counts) else 0
            height = round((plot - 4) * count / top, 1)
            title = f"{at:%H}:00 {item.label}: {count}"
            parts.append(
                f'<rect class="{escape(item.css_class)}" x="{x0 + index * bar:.1f}" '
                f'y="{plot - height:.1f}" width="{bar:.1f}" height="{height}" '
                f'data-count="{count}"><title>{escape(title)}</title></rect>'
            )
        if hour % 6 == 0:
            parts.append(f'<text x="{x0:.1f}" y="{HEIGHT - 4}" class="tick">{at:%H}:00</text>')
    parts.append("</svg>")
    return "".join(parts)
