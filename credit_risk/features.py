"""Features: cleaning, imputation, derived ratios and one-hot encoding in one fitted object.

The same fitted ``FeatureTransformer`` is used in training (on frames) and, compiled
by ``credit_risk.fast_predict.FeatureRows``, in serving (records, no DataFrame).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from credit_risk.datasets.spec import DatasetSpec
from credit_risk.expressions import parse_expression


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

    def _clean_categorical(self, name: str, values: Any) -> np.ndarray:
        col = self.spec.columns[name]
        s = pd.Series(values, dtype=object)
        s = s.where(s.isna(), s.astype(str).str.strip())
        if col.replace:
            s = s.replace(col.replace)
        if col.missing_values:
            s = s.where(~s.isin([str(v) for v in col.missing_values]))
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
            raise KeyError(f"columns missing from the data: {', '.join(missing)}")
        self.medians_: dict[str, float] = {}
        for c in self.numeric_inputs_:
            med = np.nanmedian(self._clean_numeric(c, X[c])) if X[c].notna().any() else 0.0
            self.medians_[c] = float(0.0 if np.isnan(med) else med)
        self.categories_: dict[str, list[str]] = {}
        self.modes_: dict[str, Any] = {}
        for c in self.categorical_:
            cleaned = pd.Series(self._clean_categorical(c, X[c])).dropna()
            declared = spec.columns[c].categories
            self.categories_[c] = list(declared) if declared else sorted(cleaned.unique())
            self.modes_[c] = cleaned.mode().iloc[0] if len(cleaned) else None
        self.feature_names_out_ = (
            self.numeric_features_
            + list(self.derived_)
            + [f"{c}={v}" for c in self.categorical_ for v in self.categories_[c]]
        )
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        n = len(X)
        env = {}
        for c in self.numeric_inputs_:
            x = self._clean_numeric(c, X[c]) if c in X.columns else np.full(n, np.nan)
            env[c] = np.where(np.isnan(x), self.medians_[c], x)
        blocks = [env[c] for c in self.numeric_features_]
        blocks += [np.broadcast_to(parse_expression(e).evaluate(env), (n,))
                   for e in self.derived_.values()]
        for c in self.categorical_:
            v = self._clean_categorical(c, X[c]) if c in X.columns else np.full(n, None)
            v = np.where(pd.isna(v), self.modes_[c], v)
            blocks += [(v == cat).astype(float) for cat in self.categories_[c]]
        if not blocks:
            return np.empty((n, 0))
        return np.column_stack(blocks).astype(float)

    def _clean_value(self, name: str, value: Any) -> Any:
        col = self.spec.columns[name]
        s = str(value).strip()
        s = col.replace.get(s, s)
        return self.modes_[name] if s in {str(m) for m in col.missing_values} else s

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_out_, dtype=object)

    def monotone_constraints(self) -> list[int]:
        """+1/-1/0 per output feature, from the spec's `monotone` entries."""
        signs = {"increasing": 1, "decreasing": -1, None: 0}
        out = [signs[self.spec.columns[c].monotone] for c in self.numeric_features_]
        out += [signs[self.spec.derived[d].monotone] for d in self.derived_]
        return out + [0] * (len(self.feature_names_out_) - len(out))
