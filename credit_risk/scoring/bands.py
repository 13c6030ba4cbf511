"""The rating bands of the credit score, defined once.

Poor < 500 <= Average < 650 <= Good < 750 <= Excellent. The scorer rates with them, the API
schema lists their names, the model card states them and the web form draws them (names,
limits and colours come from here, passed into the template).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Rating = Literal["Poor", "Average", "Good", "Excellent"]


@dataclass(frozen=True)
class Band:
    """Scores in [low, high) get this rating."""

    name: Rating
    low: float
    high: float
    colour: str  # the web form's gauge


BANDS: tuple[Band, ...] = (
    Band("Poor", -math.inf, 500, "#c62828"),
    Band("Average", 500, 650, "#ef8f00"),
    Band("Good", 650, 750, "#7cb342"),
    Band("Excellent", 750, math.inf, "#2e7d32"),
)
NAMES: tuple[Rating, ...] = tuple(b.name for b in BANDS)


def rating(score: float) -> Rating:
    """The band of a credit score."""
    for band in reversed(BANDS):
        if score >= band.low:
            return band.name
    return BANDS[0].name


def describe() -> str:
    """The bands in words: 'Poor < 500 <= Average < 650 <= Good < 750 <= Excellent'."""
    return BANDS[0].name + "".join(f" < {b.low:g} <= {b.name}" for b in BANDS[1:])


def on_scale(low: float, high: float) -> list[dict[str, Any]]:
    """The bands clipped to a score scale [low, high] (e.g. 300 to 900), for drawing."""
    return [{"name": b.name, "low": max(b.low, low), "high": min(b.high, high),
             "colour": b.colour} for b in BANDS if b.high > low and b.low < high]
