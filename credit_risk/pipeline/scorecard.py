"""The points scorecard's binning: each field's optimal bins (optbinning), as weight of evidence.

The binning reads the model's feature matrix (``FeatureTransformer``'s output, so missing
values are already imputed and every value capped to the training range, exactly as serving
prepares them): a numeric or derived feature is one column, binned with the field's trend of
the default rate; a categorical field is its one-hot columns, read back as its category and
grouped by default rate. ``transform`` gives one weight of evidence per field, optbinning's
``log(share of non-defaults / share of defaults)`` of the row's bin: higher is safer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from credit_risk.config import Settings
from credit_risk.spec.binning import field_trend
from credit_risk.spec.dataset import Column, DatasetSpec, Derived

# optbinning's monotonic_trend of each trend of the spec and the settings
OPTBINNING_TREND: dict[str, str | None] = {
    "increasing": "ascending", "decreasing": "descending", "monotone": "auto_asc_desc",
    "peak": "peak", "valley": "valley", "free": None,
}
PREBIN_SHARE = 0.05  # optbinning's default pre-bin size, lowered to a smaller min_bin_share


@dataclass(frozen=True)
class BinnedField:
    """One field of the scorecard: where it is in the feature matrix and how it is binned."""

    name: str
    columns: tuple[int, ...]  # numeric: its column; categorical: its one-hot columns
    categories: tuple[str, ...] | None  # categorical: the category of each one-hot column
    trend: str | None  # numeric: the trend of the default rate (a key of OPTBINNING_TREND)
    max_bins: int
    min_bin_share: float

    @property
    def categorical(self) -> bool:
        return self.categories is not None

    def fit_params(self) -> dict[str, Any]:
        """optbinning's OptimalBinning parameters of this field."""
        return {"monotonic_trend": OPTBINNING_TREND[self.trend] if self.trend else "ascending",
                "max_n_bins": self.max_bins, "min_bin_size": self.min_bin_share,
                "min_prebin_size": min(PREBIN_SHARE, self.min_bin_share)}


def scorecard_fields(spec: DatasetSpec, settings: Settings) -> list[BinnedField]:
    """The fields of a spec whose categorical vocabulary is fixed, in the feature matrix's
    order (numeric features, derived features, each categorical field's one-hot block), with
    the spec's binning or the settings' defaults."""
    card = settings.scorecard
    out: list[BinnedField] = []
    numeric: list[tuple[str, Column | Derived]] = [
        (n, spec.columns[n]) for n in spec.numeric_features()]
    numeric += list(spec.derived.items())
    for j, (name, entry) in enumerate(numeric):
        b = entry.binning
        out.append(BinnedField(
            name, (j,), None, field_trend(b, entry.monotone, card.trend),
            b.max_bins if b and b.max_bins else card.max_bins,
            b.min_bin_share if b and b.min_bin_share else card.min_bin_share))
    start = len(numeric)
    for name in spec.categorical_features():
        col = spec.columns[name]
        categories = tuple(col.categories or ())
        b = col.binning
        out.append(BinnedField(
            name, tuple(range(start, start + len(categories))), categories, None,
            b.max_bins if b and b.max_bins else card.max_bins,
            b.min_bin_share if b and b.min_bin_share else card.min_bin_share))
        start += len(categories)
    return out


class ScorecardBinning(TransformerMixin, BaseEstimator):
    """Feature rows in, one weight of evidence per field out (optbinning's BinningProcess)."""

    def __init__(self, fields: list[BinnedField]):
        self.fields = fields

    def frame(self, X: np.ndarray) -> pd.DataFrame:
        """The fields of feature rows: numeric values, and each categorical field's category
        (None where no one-hot column is set: a category unseen when the features were fitted,
        binned as optbinning bins a missing value)."""
        X = np.asarray(X, dtype=float)
        out: dict[str, Any] = {}
        for f in self.fields:
            if not f.categorical:
                out[f.name] = X[:, f.columns[0]]
                continue
            block = X[:, list(f.columns)]
            hot = block.argmax(axis=1) if block.shape[1] else np.zeros(len(X), dtype=int)
            labels = np.array([*(f.categories or ()), None], dtype=object)
            out[f.name] = labels[np.where(block.max(axis=1, initial=0.0) > 0.5, hot, -1)]
        return pd.DataFrame(out)

    def fit(self, X: np.ndarray, y: Any) -> ScorecardBinning:
        from optbinning import BinningProcess  # when a scorecard is trained, not on import

        names = [f.name for f in self.fields]
        self.process_ = BinningProcess(
            names, categorical_variables=[f.name for f in self.fields if f.categorical],
            binning_fit_params={f.name: f.fit_params() for f in self.fields})
        self.process_.fit(self.frame(X), np.asarray(y, dtype=int))
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        woe = self.process_.transform(self.frame(X), metric="woe")
        return np.asarray(woe, dtype=float)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f.name for f in self.fields], dtype=object)

    def binned(self, name: str) -> Any:
        """The fitted OptimalBinning of one field."""
        return self.process_.get_binned_variable(name)

    def information_values(self) -> dict[str, float]:
        """Each field's information value on the rows the binning was fitted on."""
        return {f.name: float(self.table(f.name)["IV"].sum()) for f in self.fields}

    def table(self, name: str) -> pd.DataFrame:
        """optbinning's binning table of one field, without totals: a row per bin (then its
        special and missing bins), with Count, Event rate, WoE and IV."""
        return self.binned(name).binning_table.build(add_totals=False)


def field_strengths(binning: ScorecardBinning, iv_weak: float, iv_strong: float
                    ) -> list[dict[str, Any]]:
    """Each field's information value and verdict: weak (below iv_weak: it barely separates
    defaults), strong (above iv_strong: suspiciously so, a leak of the outcome?) or ok."""
    out = []
    for name, iv in binning.information_values().items():
        verdict = "weak" if iv < iv_weak else "strong" if iv > iv_strong else "ok"
        out.append({"field": name, "iv": iv, "verdict": verdict})
    return out
