"""Server-rendered, accessible SVG charts (no JavaScript, no third-party code)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


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
