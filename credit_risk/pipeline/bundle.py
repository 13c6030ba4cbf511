"""Compile a fitted CalibratedModel into its pure-data scoring plan (the training side).

The plan's files hold no pickle: JSON, an ``.npz`` of plain arrays and XGBoost's own
model format. ``check_plan`` holds the compiled plan to the fitted pipeline once, at publish.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from credit_risk.pipeline.scorecard_bundle import is_scorecard, scorecard_head
from credit_risk.pipeline.train import CalibratedModel
from credit_risk.scoring.plan import (
    ARRAYS_FILE,
    BOOSTER_FILE,
    FORMAT,
    PLAN_FILE,
    PlanError,
    ScoringPlan,
)


def _positive_column(estimator: Any) -> int:
    return int(np.flatnonzero(np.asarray(estimator.classes_) == 1)[0])


def _affine(steps: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Scalers before the model folded into x * a + b."""
    a: np.ndarray | float = 1.0
    b: np.ndarray | float = 0.0
    for step in steps:
        if not isinstance(step, StandardScaler):
            raise PlanError(f"cannot compile a {type(step).__name__} step into a scoring plan")
        mean = step.mean_ if step.with_mean else 0.0
        scale = step.scale_ if step.with_std else 1.0
        a, b = a / scale, (b - mean) / scale
    return np.asarray(a, dtype=float), np.asarray(b, dtype=float)


def _forest(est: RandomForestClassifier) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every tree as padded arrays; a leaf's children are the leaf itself."""
    trees = [e.tree_ for e in est.estimators_]
    width = max(t.node_count for t in trees)
    shape = (len(trees), width)
    padding = np.broadcast_to(np.arange(width), shape)  # unused nodes point at themselves
    left, right = padding.astype(np.intp), padding.astype(np.intp)
    feature, threshold = np.zeros(shape, np.intp), np.zeros(shape, np.float64)
    share = np.zeros(shape, np.float64)
    col = _positive_column(est)
    for i, t in enumerate(trees):
        n = t.node_count
        nodes = np.arange(n)
        leaf = t.children_left == -1
        left[i, :n] = np.where(leaf, nodes, t.children_left)
        right[i, :n] = np.where(leaf, nodes, t.children_right)
        feature[i, :n] = np.where(leaf, 0, t.feature)
        threshold[i, :n] = t.threshold
        value = t.value[:, 0, :]
        share[i, :n] = value[:, col] / value.sum(axis=1)
    arrays = {"forest_left": left, "forest_right": right, "forest_feature": feature,
              "forest_threshold": threshold, "forest_share": share}
    return {"kind": "forest", "depth": int(max(t.max_depth for t in trees))}, arrays


def _head(model: CalibratedModel) -> tuple[dict[str, Any], dict[str, np.ndarray], bytes | None]:
    if is_scorecard(model):  # bins to log-odds, in plan.json
        return scorecard_head(model), {}, None
    steps = [s for _, s in model.pipeline.steps[1:] if not hasattr(s, "fit_resample")]
    *pre, est = steps
    if isinstance(est, LogisticRegression) and est.coef_.shape[0] == 1:
        a, b = _affine(pre)
        sign = 1.0 if _positive_column(est) == 1 else -1.0
        coef = est.coef_[0]
        w0 = sign * float(est.intercept_[0] + np.dot(coef, b))
        return {"kind": "linear", "intercept": w0}, {"linear_w": sign * coef * a}, None
    if pre:
        raise PlanError(f"cannot compile {[type(s).__name__ for s in pre]} before a "
                        f"{type(est).__name__}")
    if isinstance(est, RandomForestClassifier):
        head, arrays = _forest(est)
        return head, arrays, None
    if isinstance(est, XGBClassifier) and getattr(est, "n_classes_", 2) == 2 \
            and str(est.get_params().get("objective")) == "binary:logistic":
        best = getattr(est, "best_iteration", None)
        iterations = [0, best + 1] if best is not None else [0, 0]
        booster = bytes(est.get_booster().save_raw("ubj"))
        return {"kind": "xgboost", "iteration_range": iterations}, {}, booster
    raise PlanError(f"cannot compile a {type(est).__name__} into a scoring plan")


def compile_bundle(model: CalibratedModel) -> dict[str, bytes]:
    """The version files of a fitted model's scoring plan."""
    head, head_arrays, booster = _head(model)
    calibration, cal_arrays = model.calibrator.spec, model.calibrator.arrays
    plan = {"format": FORMAT, "features": model.features.plan_, "head": head,
            "calibration": calibration, "master_scale": model.master_scale.to_plan()}
    buf = io.BytesIO()
    np.savez(buf, **head_arrays, **cal_arrays)  # type: ignore[arg-type]
    files = {PLAN_FILE: json.dumps(plan, indent=1).encode(), ARRAYS_FILE: buf.getvalue()}
    if booster is not None:
        files[BOOSTER_FILE] = booster
    return files


def plan_of(model: CalibratedModel) -> ScoringPlan:
    """The model's scoring plan, compiled and loaded back as serving loads it."""
    return ScoringPlan.from_files(compile_bundle(model))


def frame_records(X: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as records (missing values as None), the input of a plan."""
    return X.astype(object).where(X.notna(), None).to_dict("records")


def check_plan(model: CalibratedModel, X: pd.DataFrame, tolerance: float = 1e-6) -> None:
    """Raise PlanError unless the compiled plan gives the pipeline's PDs on X."""
    expected = model.predict_pd(X)
    got = plan_of(model).predict_records(frame_records(X))
    worst = float(np.max(np.abs(got - expected))) if len(X) else 0.0
    if not worst <= tolerance:
        raise PlanError(f"the compiled scoring plan differs from the fitted model by {worst:.3g}"
                        f" in PD (tolerance {tolerance:g})")
