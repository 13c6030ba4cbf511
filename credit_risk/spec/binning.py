"""A field's binning in the points scorecard: its trend and bin limits (default: the settings).

`trend` is the shape the default rate must take across a numeric field's bins, from low values
to high ones: `increasing`, `decreasing`, `monotone` (either, chosen by the data), `peak`,
`valley` or `free` (no constraint). A field's `monotone:` (the trees' constraint) is its trend
unless `binning.trend` says the same; a contradiction is refused. A categorical field's
categories are sorted by their default rate and grouped, so it takes no trend.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from credit_risk.config.scorecard import Trend


class Binning(BaseModel):
    """The scorecard's optimal binning of one field (`scorecard` candidate); each key left out
    takes the `SCORECARD_*` setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trend: Trend | None = None  # the default rate across the bins, low values to high
    max_bins: int | None = Field(None, ge=2, le=20)  # at most this many bins
    min_bin_share: float | None = Field(None, gt=0, le=0.5)  # each bin holds this share of rows


def binning_conflict(binning: Binning | None, monotone: str | None, categorical: bool,
                     feature: bool) -> str | None:
    """Why a field's binning cannot be used (None: it can)."""
    if binning is None:
        return None
    if not feature:
        return "binning is for model features (this one is not)"
    if categorical and binning.trend is not None:
        return ("a categorical field takes no binning trend: its categories are grouped in "
                "order of their default rate")
    if monotone is not None and binning.trend not in (None, monotone):
        return f"binning trend {binning.trend!r} contradicts monotone {monotone!r}"
    return None


def field_trend(binning: Binning | None, monotone: str | None, default: str) -> str:
    """A numeric field's trend: its binning's, else its monotone constraint, else `default`."""
    if binning is not None and binning.trend is not None:
        return binning.trend
    return monotone or default
