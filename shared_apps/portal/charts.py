"""A server-rendered bar chart (inline SVG): pushes and pulls per day.

The geometry is computed here and the template draws ``<rect>`` elements,
so the dashboard needs no JavaScript and no chart library. Text stays in HTML
around the SVG, which stretches to the page's width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SERIES = (("pushes", "Pushes"), ("pulls", "Pulls"))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    first_date: str
    last_date: str
    totals: dict[str, int]
    gridlines: list[float]

    @property
    def empty(self) -> bool:
        return self.peak == 0


def _nice_peak(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1): round gridlines."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 < value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def usage_chart(series: list[dict[str, Any]], *, width: int = 600, height: int = 160) -> Chart:
    """Grouped bars (one group per day) for the daily ``series`` from :func:`billing.usage.usage_days`."""
    days = len(series) or 1
    peak = _nice_peak(max((int(day.get(name, 0)) for day in series for name, _ in SERIES), default=0))
    slot = width / days
    bar_width = slot * 0.8 / len(SERIES)
    bars: list[Bar] = []
    for index, day in enumerate(series):
        for offset, (name, label) in enumerate(SERIES):
            value = int(day.get(name, 0))
            bar_height = height * value / peak
            bars.append(
                Bar(
                    x=round(index * slot + slot * 0.1 + offset * bar_width, 2),
                    y=round(height - bar_height, 2),
                    width=round(bar_width, 2),
                    height=round(bar_height, 2),
                    series=name,
                    title=f"{day['date']}: {value} {label.lower()}",
                )
            )
    totals = {name: sum(int(day.get(name, 0)) for day in series) for name, _ in SERIES}
    return Chart(
        width=width,
        height=height,
        bars=bars,
        peak=peak if any(totals.values()) else 0,
        first_date=series[0]["date"] if series else "",
        last_date=series[-1]["date"] if series else "",
        totals=totals,
        gridlines=[round(height * fraction, 2) for fraction in (0.0, 0.5)],
    )
