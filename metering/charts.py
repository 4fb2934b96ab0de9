"""Server-rendered, accessible SVG charts (no JavaScript, no third-party code)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass
class Bar:
    label: str
    value: Decimal
    x: float
    y: float
    width: float
    height: float


def bar_chart(points: list[tuple[str, Decimal]], *, width: int = 900, height: int = 220) -> dict:
    """Geometry for a bar chart of (label, value); the template draws it with a <title> per bar."""
    top = max((value for _label, value in points), default=Decimal(0))
    plot_height = height - 30
    step = width / max(len(points), 1)
    bars = []
    for index, (label, value) in enumerate(points):
        bar_height = float(value / top) * plot_height if top else 0.0
        bars.append(
            Bar(
                label=label,
                value=value,
                x=index * step + 1,
                y=plot_height - bar_height,
                width=max(step - 2, 1),
                height=bar_height,
            )
        )
    ticks = [bars[i] for i in range(0, len(bars), max(1, len(bars) // 6))]
    return {"bars": bars, "ticks": ticks, "top": top, "width": width, "height": height, "plot_height": plot_height}


@dataclass
class Segment:
    series: int
    label: str
    value: Decimal
    x: float
    y: float
    width: float
    height: float


SERIES_LIMIT = 5


def stacked_chart(
    days: list[str],
    values: dict[str, dict[str, Decimal]],
    *,
    others_label: str,
    others: dict[str, Decimal] | None = None,
    width: int = 900,
    height: int = 220,
) -> dict:
    """Geometry for daily bars stacked by group: the SERIES_LIMIT largest groups over the period, the rest
    summed as one "others" series. `values` maps group → day → cost; `others`, day → cost of groups not in
    `values` (when only the largest were summed by day). Each series has its own fill pattern as well as its
    colour, so the chart reads without colour."""
    totals = sorted(((sum(by_day.values(), Decimal(0)), name) for name, by_day in values.items()), reverse=True)
    names = [name for _total, name in totals[:SERIES_LIMIT]]
    series: list[dict[str, Any]] = [{"index": i, "label": name, "total": values[name]} for i, name in enumerate(names)]
    rest = [name for _total, name in totals[SERIES_LIMIT:]]
    if rest or any((others or {}).values()):
        merged: dict[str, Decimal] = {day: value for day, value in (others or {}).items() if value}
        for name in rest:
            for day, value in values[name].items():
                merged[day] = merged.get(day, Decimal(0)) + value
        series.append({"index": len(series), "label": others_label, "total": merged})
    day_totals = [sum((s["total"].get(day, Decimal(0)) for s in series), Decimal(0)) for day in days]
    top = max(day_totals, default=Decimal(0))
    plot_height = height - 30
    step = width / max(len(days), 1)
    segments = []
    for index, day in enumerate(days):
        base = float(plot_height)
        for s in series:
            value = s["total"].get(day, Decimal(0))
            if not value:
                continue
            segment_height = float(value / top) * plot_height if top else 0.0
            base -= segment_height
            segments.append(
                Segment(
                    s["index"], f"{day} · {s['label']}", value, index * step + 1, base, max(step - 2, 1), segment_height
                )
            )
    legend = [{"index": s["index"], "label": s["label"], "value": sum(s["total"].values(), Decimal(0))} for s in series]
    ticks = [(index * step + 1, days[index]) for index in range(0, len(days), max(1, len(days) // 6))]
    return {
        "segments": segments,
        "legend": legend,
        "ticks": ticks,
        "top": top,
        "days": len(days),
        "width": width,
        "height": height,
        "plot_height": plot_height,
    }
