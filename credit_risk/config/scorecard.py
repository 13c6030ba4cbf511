"""Settings of the points scorecard candidate: its optimal binning and its field report."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from credit_risk.config.base import Group, env

# The default rate across a numeric field's bins, low values to high (`monotone`: rising or
# falling, chosen by the data; `free`: no constraint). The spec's `binning.trend` takes these.
Trend = Literal["increasing", "decreasing", "monotone", "peak", "valley", "free"]


class ScorecardSettings(Group):
    title: ClassVar[str] = "Points scorecard"
    max_bins: int = Field(8, ge=2, le=20, alias=env("scorecard_max_bins"),
                          description="Bins per field at most (a spec's `binning:` may say "
                                      "otherwise for a field).")
    min_bin_share: float = Field(0.05, gt=0, le=0.5, alias=env("scorecard_min_bin_share"),
                                 description="Share of the training rows each bin holds at "
                                             "least.")
    trend: Trend = Field("monotone", alias=env("scorecard_trend"),
                         description="Default rate across a numeric field's bins when its spec "
                                     "says nothing: monotone (rising or falling, chosen by the "
                                     "data), increasing, decreasing, peak, valley or free.")
    iv_weak: float = Field(0.02, ge=0, alias=env("scorecard_iv_weak"),
                           description="A field with an information value below this is "
                                       "reported as weak.")
    iv_strong: float = Field(0.5, gt=0, alias=env("scorecard_iv_strong"),
                             description="A field with an information value above this is "
                                         "reported as suspiciously strong (a leak?).")

    @model_validator(mode="after")
    def _ordered(self) -> ScorecardSettings:
        if self.iv_weak >= self.iv_strong:
            raise ValueError(f"scorecard_iv_weak ({self.iv_weak}) must be below "
                             f"scorecard_iv_strong ({self.iv_strong})")
        return self
