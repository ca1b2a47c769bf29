"""Geometry of the server-rendered SVG plot of a scan's signals against their thresholds.

Signals carry different units (nats, fractions, attention mass), so each row gets its own axis from
min(0, score, threshold) to max(score, threshold) with some headroom: the plot shows where a score
sits relative to its own threshold, which is what the scan decided on. The numbers are printed beside
every bar; the template draws the shapes (autoescaped like every other text), no script is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

WIDTH = 720
LABEL_WIDTH = 190  # signal names
VALUE_WIDTH = 170  # "score / threshold" text
ROW_HEIGHT = 34
TOP = 8
PLOT_LEFT = LABEL_WIDTH
PLOT_WIDTH = WIDTH - LABEL_WIDTH - VALUE_WIDTH


@dataclass(frozen=True)
class SignalBar:
    """One row: the bar from the axis origin to the score, and a tick at the threshold."""

    name: str
    unit: str
    score: float
    threshold: float
    triggered: bool
    y: float
    bar_x: float
    bar_width: float
    threshold_x: float
    zero_x: float

    @property
    def value_text(self) -> str:
        return f"{self.score:.4g} / {self.threshold:.4g}"


@dataclass(frozen=True)
class SignalPlot:
    width: int
    height: int
    plot_left: int
    plot_width: int
    value_x: int
    bars: list[SignalBar]
    skipped: list[str]  # signals whose numbers could not be drawn (not finite), named in the page


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def signal_plot(signals: list[Any]) -> SignalPlot | None:
    """Rows for every signal with finite score and threshold; None when there is nothing to draw."""
    bars: list[SignalBar] = []
    skipped: list[str] = []
    for s in signals:
        if not isinstance(s, dict):
            continue
        name = str(s.get("name", "?"))
        score, threshold = _number(s.get("score")), _number(s.get("threshold"))
        if score is None or threshold is None:
            skipped.append(name)
            continue
        low = min(0.0, score, threshold)
        high = max(0.0, score, threshold)
        span = (high - low) * 1.2 or 1.0  # headroom so a bar at the threshold is visibly at it
        scale = PLOT_WIDTH / span

        def x(v: float, low: float = low, scale: float = scale) -> float:
            return round(PLOT_LEFT + (v - low) * scale, 2)

        zero = x(0.0)
        end = x(score)
        triggered = s.get("triggered")
        bars.append(
            SignalBar(
                name=name,
                unit=str(s.get("unit", "")),
                score=score,
                threshold=threshold,
                triggered=bool(triggered) if isinstance(triggered, bool) else score >= threshold,
                y=TOP + len(bars) * ROW_HEIGHT,
                bar_x=min(zero, end),
                bar_width=round(abs(end - zero), 2),
                threshold_x=x(threshold),
                zero_x=zero,
            )
        )
    if not bars and not skipped:
        return None
    return SignalPlot(
        width=WIDTH,
        height=TOP * 2 + max(1, len(bars)) * ROW_HEIGHT,
        plot_left=PLOT_LEFT,
        plot_width=PLOT_WIDTH,
        value_x=PLOT_LEFT + PLOT_WIDTH + 8,
        bars=bars,
        skipped=skipped,
    )
