"""Features: cleaning, imputation, training-range caps, derived ratios and one-hot encoding.

``fit`` learns the feature plan (``plan_``, pure data); ``transform`` runs it through the
same ``credit_risk.scoring.plan.FeaturePlan`` code that serving runs on records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from credit_risk.errors import CreditRiskError
from credit_risk.scoring.features import FeaturePlan, cap
from credit_risk.spec.codes import category_text
from credit_risk.spec.dataset import DatasetSpec
from credit_risk.spec.expressions import parse_expression


class MissingColumnsError(CreditRiskError, KeyError):
    """The data lacks columns the spec's features need."""

    def __str__(self) -> str:  # the message as it is, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """Turn applications (joined raw columns) into the model's numeric matrix."""

    def __init__(self, spec: DatasetSpec):
        self.spec = spec

    # -- cleaning ---------------------------------------------------------------
    def _clean_numeric(self, name: str, values: Any) -> np.ndarray:
        col = self.spec.columns[name]
        x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        for missing in col.missing_values:
            x[x == float(missing)] = np.nan
        return x

    def _categorical_codes(self, name: str, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each row's code into the cleaned distinct values (-1: missing) and those values:
        the cleaning runs once per distinct raw value, not once per row."""
        codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
        cleaned = self._clean_values(name, np.asarray(uniques, dtype=object))
        if len(cleaned):
            codes = np.where(pd.isna(cleaned)[np.maximum(codes, 0)], -1, codes)
        return codes, cleaned

    def _clean_values(self, name: str, values: np.ndarray) -> np.ndarray:
        col = self.spec.columns[name]
        s = pd.Series(values, dtype=object)
        s = s.where(s.isna(), s.map(category_text))  # 1, 1.0 and "1.0" are the code "1"
        if col.replace:
            s = s.replace(col.replace)
        if col.missing_values:
            s = s.where(~s.isin([category_text(v) for v in col.missing_values]))
        return s.to_numpy(dtype=object)

    # -- fit / transform ----------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureTransformer:
        spec = self.spec
        self.numeric_inputs_ = [c for c in spec.input_columns()
                                if spec.columns[c].role.value == "numeric"]
        self.numeric_features_ = spec.numeric_features()
        self.derived_ = {n: d.expr for n, d in spec.derived.items()}
        self.categorical_ = spec.categorical_features()
        missing = [c for c in self.numeric_inputs_ + self.categorical_ if c not in X.columns]
        if missing:
            raise MissingColumnsError(f"columns missing from the data: {', '.join(missing)}")
        cleaned = {c: self._clean_numeric(c, X[c]) for c in self.numeric_inputs_}
        self.medians_: dict[str, float] = {}
        for c in self.numeric_inputs_:
            med = np.nanmedian(cleaned[c]) if X[c].notna().any() else 0.0
            self.medians_[c] = float(0.0 if np.isnan(med) else med)
        self.categories_: dict[str, list[str]] = {}
        self.modes_: dict[str, Any] = {}
        for c in self.categorical_:
            codes, values = self._categorical_codes(c, X[c])
            counts = pd.Series(np.bincount(codes[codes >= 0], minlength=len(values)),
                               index=values, dtype=np.int64)
            counts = counts[counts.index.notna()].groupby(level=0).sum()
            declared = spec.columns[c].categories
            self.categories_[c] = list(declared) if declared else sorted(counts.index)
            # the most frequent cleaned value; of a tie, the first in sort order
            self.modes_[c] = min(counts.index[counts == counts.max()]) if len(counts) else None
        self.feature_names_out_ = (
            self.numeric_features_
            + list(self.derived_)
            + [f"{c}={v}" for c in self.categorical_ for v in self.categories_[c]]
        )
        self.ranges_ = {c: _range(cleaned[c], self.medians_[c]) for c in self.numeric_inputs_}
        env = {}
        for c in self.numeric_inputs_:
            x = cleaned[c]
            env[c] = cap(np.where(np.isnan(x), self.medians_[c], x), *self.ranges_[c])
        with np.errstate(all="ignore"):
            self.derived_ranges_ = {
                d: _range(np.broadcast_to(parse_expression(e).evaluate(env), (len(X),)), 0.0)
                for d, e in self.derived_.items()}
        self.plan_ = self._plan()
        return self

    def _plan(self) -> dict[str, Any]:
        """The fitted state as pure data (JSON): what serving runs."""
        spec = self.spec
        return {
            "names": list(self.feature_names_out_),
            "numeric": [{"name": c, "median": self.medians_[c],
                         "missing": [float(m) for m in spec.columns[c].missing_values],
                         "min": self.ranges_[c][0], "max": self.ranges_[c][1]}
                        for c in self.numeric_inputs_],
            "features": list(self.numeric_features_),
            "derived": [{"name": d, "expr": e, "min": self.derived_ranges_[d][0],
                         "max": self.derived_ranges_[d][1]} for d, e in self.derived_.items()],
            "categorical": [{"name": c, "categories": list(self.categories_[c]),
                             "mode": self.modes_[c], "replace": dict(spec.columns[c].replace),
                             "missing": [category_text(m)
                                         for m in spec.columns[c].missing_values]}
                            for c in self.categorical_],
        }

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        n = len(X)
        plan = FeaturePlan(self.plan_)
        numeric = {c: self._clean_numeric(c, X[c]) if c in X.columns else np.full(n, np.nan)
                   for c in self.numeric_inputs_}
        positions = []
        for i, c in enumerate(self.categorical_):
            if c not in X.columns:
                positions.append(np.full(n, plan.position(i, None), dtype=np.intp))
                continue
            codes, values = self._categorical_codes(c, X[c])
            index = {v: k for k, v in enumerate(self.categories_[c])}
            known = np.array([index.get(v, -1) for v in values] + [plan.position(i, None)],
                             dtype=np.intp)  # the last one: missing, scored as the mode
            positions.append(known[codes])  # code -1 picks the last
        return plan.assemble(numeric, positions, n)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)

    def monotone_constraints(self) -> list[int]:
        """+1/-1/0 per output feature, from the spec's `monotone` entries."""
        signs = {"increasing": 1, "decreasing": -1, None: 0}
        out = [signs[self.spec.columns[c].monotone] for c in self.numeric_features_]
        out += [signs[self.spec.derived[d].monotone] for d in self.derived_]
        return out + [0] * (len(self.feature_names_out_) - len(out))


def _range(x: np.ndarray, default: float) -> tuple[float, float]:
    """The finite values' [min, max] (both `default` when there are none)."""
    finite = np.asarray(x, dtype=float)
    finite = finite[np.isfinite(finite)]
    return (float(finite.min()), float(finite.max())) if len(finite) else (default, default)
