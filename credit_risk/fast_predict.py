"""A fitted CalibratedModel compiled for serving: records to numeric rows to calibrated PDs.

No pandas and no scikit-learn input checks on the request path. Features go
straight from validated records into a float matrix (`FeatureRows`), the model
runs on NumPy (XGBoost's `Booster.inplace_predict` with one thread, logistic
regression as one dot product with the scaler folded in, anything else through
its own `predict_proba`), and the calibrator is applied with NumPy
(`np.interp` on the isotonic thresholds). The numbers match
``CalibratedModel.predict_pd`` on a DataFrame; the tests hold them to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from credit_risk.expressions import parse_expression
from credit_risk.features import FeatureTransformer
from credit_risk.train import CalibratedModel, _logit

Predict = Callable[[np.ndarray], np.ndarray]
LARGEST = float(np.finfo(np.float32).max)  # finite as float32 too (XGBoost's input type)


def _finite(x: np.ndarray) -> np.ndarray:
    """A derived ratio can overflow (a loan over a tiny income): keep every value finite."""
    return np.nan_to_num(x, copy=False, nan=0.0, posinf=LARGEST, neginf=-LARGEST).clip(
        -LARGEST, LARGEST, out=x)


def _expit(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


class FeatureRows:
    """The fitted FeatureTransformer's `transform`, for validated records instead of a frame."""

    def __init__(self, features: FeatureTransformer):
        spec = features.spec
        self.names: list[str] = list(features.feature_names_out_)
        self._numeric = [
            (c, float(features.medians_[c]),
             frozenset(float(m) for m in spec.columns[c].missing_values))
            for c in features.numeric_inputs_
        ]
        self._features = list(features.numeric_features_)
        self._derived = [parse_expression(e).evaluate for e in features.derived_.values()]
        self._categorical = []
        for c in features.categorical_:
            cats = list(features.categories_[c])
            position = {cat: i for i, cat in enumerate(cats)}
            mode = features.modes_[c]
            known: dict[Any, int] = {}
            for raw in {*cats, *spec.columns[c].replace}:
                known[raw] = position.get(features._clean_value(c, raw), -1)

            def locate(v: Any, c: str = c, known: dict[Any, int] = known,
                       position: dict[str, int] = position, mode: Any = mode) -> int:
                if v is None or (isinstance(v, float) and v != v):
                    return position.get(mode, -1)
                hit = known.get(v)
                return hit if hit is not None else position.get(features._clean_value(c, v), -1)

            self._categorical.append((c, len(cats), known, locate))
        self.width = len(self.names)

    def row(self, record: Mapping[str, Any]) -> np.ndarray:
        """One application to a (1, width) float row, with plain Python arithmetic."""
        env: dict[str, float] = {}
        for name, median, missing in self._numeric:
            v = record.get(name)
            if v is None or v != v:
                env[name] = median
            else:
                x = float(v)
                env[name] = median if x in missing else x
        out = [env[n] for n in self._features]
        out += [float(ev(env)) for ev in self._derived]
        for name, width, _, locate in self._categorical:
            hot = [0.0] * width
            pos = locate(record.get(name))
            if pos >= 0:
                hot[pos] = 1.0
            out += hot
        return _finite(np.array([out], dtype=float))

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Many applications to an (n, width) float matrix, column by column with NumPy."""
        n = len(records)
        out = np.zeros((n, self.width), dtype=float)
        env: dict[str, np.ndarray] = {}
        for name, median, missing in self._numeric:
            x = np.array([r.get(name) for r in records], dtype=float)
            if missing:
                x[np.isin(x, list(missing))] = np.nan
            x[np.isnan(x)] = median
            env[name] = x
        j = 0
        for name in self._features:
            out[:, j] = env[name]
            j += 1
        with np.errstate(over="ignore", invalid="ignore"):
            for ev in self._derived:
                out[:, j] = ev(env)
                j += 1
        rows = np.arange(n)
        for name, width, known, locate in self._categorical:
            hits = [known.get(r.get(name), -2) for r in records]  # -2: not a known value
            if -2 in hits:
                hits = [locate(r.get(name)) if h == -2 else h
                        for h, r in zip(hits, records, strict=True)]
            pos = np.array(hits, dtype=np.intp)
            hit = pos >= 0
            out[rows[hit], j + pos[hit]] = 1.0
            j += width
        return _finite(out)

    def rows(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.row(records[0]) if len(records) == 1 else self.matrix(records)


def _affine(steps: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Scalers before the model as x * a + b, or None if a step is not a StandardScaler."""
    a: np.ndarray | float = 1.0
    b: np.ndarray | float = 0.0
    for step in steps:
        if not isinstance(step, StandardScaler):
            return None
        mean = step.mean_ if step.with_mean else 0.0
        scale = step.scale_ if step.with_std else 1.0
        a, b = a / scale, (b - mean) / scale
    return np.asarray(a, dtype=float), np.asarray(b, dtype=float)


def _positive_column(estimator: Any) -> int:
    return int(np.flatnonzero(np.asarray(estimator.classes_) == 1)[0])


def _compile_head(steps: list[Any]) -> tuple[str, Predict, Any]:
    """The steps after the features (samplers dropped) as rows -> raw P(default)."""
    *pre, est = steps
    affine = _affine(pre)
    if isinstance(est, LogisticRegression) and affine is not None and est.coef_.shape[0] == 1:
        a, b = affine
        coef = est.coef_[0]
        w = coef * a
        w0 = float(est.intercept_[0] + np.dot(coef, b))
        sign = 1.0 if _positive_column(est) == 1 else -1.0
        return "linear", lambda x: _expit(sign * (x @ w + w0)), None
    if hasattr(est, "get_booster") and not pre and getattr(est, "n_classes_", 2) == 2 \
            and str(est.get_params().get("objective", "binary:logistic")) == "binary:logistic":
        booster = est.get_booster().copy()
        booster.set_param({"nthread": 1})
        best = getattr(est, "best_iteration", None)
        iterations = (0, best + 1) if best is not None else (0, 0)

        def xgb(x: np.ndarray) -> np.ndarray:
            raw = booster.inplace_predict(np.asarray(x, dtype=np.float32),
                                          iteration_range=iterations, validate_features=False)
            return np.asarray(raw, dtype=float).reshape(-1)

        return "xgboost", xgb, booster
    if hasattr(est, "n_jobs"):
        est.n_jobs = 1  # one thread per worker: the workers are the parallelism
    col = _positive_column(est)

    def generic(x: np.ndarray) -> np.ndarray:
        for step in pre:
            x = step.transform(x)
        return np.asarray(est.predict_proba(x)[:, col], dtype=float)

    return type(est).__name__, generic, None


def _compile_calibrator(calibrator: Any) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(calibrator, IsotonicRegression) and calibrator.increasing_ in (True, 1):
        xs = np.asarray(calibrator.X_thresholds_, dtype=float)
        ys = np.asarray(calibrator.y_thresholds_, dtype=float)
        return lambda raw: np.interp(raw, xs, ys)
    if isinstance(calibrator, LogisticRegression) and calibrator.coef_.shape == (1, 1):
        slope, intercept = float(calibrator.coef_[0, 0]), float(calibrator.intercept_[0])
        sign = 1.0 if _positive_column(calibrator) == 1 else -1.0
        return lambda raw: _expit(sign * (_logit(raw) * slope + intercept))
    return lambda raw: CalibratedModel(None, calibrator).calibrate(raw)


class FastPredictor:
    """Records or feature rows in, calibrated PDs out; built once per loaded model."""

    def __init__(self, model: CalibratedModel):
        self.features = FeatureRows(model.features)
        steps = [s for _, s in model.pipeline.steps[1:] if not hasattr(s, "fit_resample")]
        self.kind, self._raw, self.booster = _compile_head(steps)
        self._calibrate = _compile_calibrator(model.calibrator)

    def rows(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Feature rows: one record straight into a row, many column by column."""
        return self.features.rows(records)

    def predict_raw(self, rows: np.ndarray) -> np.ndarray:
        return self._raw(rows)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated PDs of feature rows."""
        return self._calibrate(self._raw(rows))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.predict(self.rows(records)) if records else np.empty(0)
