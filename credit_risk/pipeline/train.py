"""Training: candidates with SMOTE inside the CV folds, a bounded search, calibration, threshold."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import ParameterSampler, StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from credit_risk.config import Settings
from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.evaluate import (
    cost_minimising_threshold,
    expected_calibration_error,
    recall_threshold,
)
from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.scoring.plan import expit
from credit_risk.scoring.plan import logit as _logit
from credit_risk.spec.dataset import DatasetSpec

log = logging.getLogger(__name__)


class TrainingError(CreditRiskError, RuntimeError):
    """The data or the settings cannot train a model (a single class, an unknown model)."""


@dataclass
class CalibratedModel:
    """A fitted feature+model pipeline and the calibrator fitted on its out-of-fold PDs."""

    pipeline: Pipeline
    calibrator: IsotonicRegression | LogisticRegression

    @property
    def features(self) -> FeatureTransformer:
        return self.pipeline.named_steps["features"]

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        return raw_pd(self.pipeline, X)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        if isinstance(self.calibrator, IsotonicRegression):
            return np.asarray(self.calibrator.predict(raw), dtype=float)
        return self.calibrator.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:
        return self.calibrate(self.predict_raw(X))


def raw_pd(pipe: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Uncalibrated P(default). For XGBoost: the logistic link in float64 on its float32
    margin, exactly as the scoring plan computes it (XGBoost's own float32 sigmoid differs in
    the last bits, which a steep part of the isotonic calibration turns into PD differences)."""
    est = pipe.steps[-1][1]
    if isinstance(est, XGBClassifier):
        rows: Any = X
        for _, step in pipe.steps[:-1]:
            if not hasattr(step, "fit_resample"):  # samplers act in fit only
                rows = step.transform(rows)
        rows = np.asarray(rows, dtype=np.float32)
        best = getattr(est, "best_iteration", None)
        margin = est.get_booster().inplace_predict(
            rows, predict_type="margin", validate_features=False,
            iteration_range=(0, best + 1) if best is not None else (0, 0))
        return expit(np.asarray(margin, dtype=np.float64).reshape(-1))
    return pipe.predict_proba(X)[:, 1]


@dataclass
class Candidate:
    name: str
    params: dict[str, Any]
    cv_roc_auc: float
    model: CalibratedModel
    threshold: float
    validation: dict[str, float] = field(default_factory=dict)
    search: list[dict[str, Any]] = field(default_factory=list)
    fit_seconds: float = 0.0


# -- candidates: estimator factory and bounded search space ----------------------------
def _logistic(monotone: list[int], seed: int) -> tuple[list, dict]:
    steps = [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))]
    return steps, {"model__C": loguniform(1e-3, 10)}


def _random_forest(monotone: list[int], seed: int) -> tuple[list, dict]:
    model = RandomForestClassifier(
        n_estimators=150, n_jobs=-1, random_state=seed, monotonic_cst=monotone, max_samples=0.5
    )
    space = {
        "model__max_depth": [6, 8, 12],
        "model__min_samples_leaf": [5, 20, 50],
        "model__max_features": ["sqrt", 0.5],
    }
    return [("model", model)], space


def _xgboost(monotone: list[int], seed: int) -> tuple[list, dict]:
    model = XGBClassifier(
        n_estimators=300,
        tree_method="hist",
        n_jobs=-1,
        random_state=seed,
        subsample=0.8,
        colsample_bytree=0.8,
        monotone_constraints=tuple(monotone),
        eval_metric="logloss",
    )
    space = {
        "model__max_depth": [3, 4, 5, 6],
        "model__learning_rate": loguniform(0.02, 0.2),
        "model__min_child_weight": [1, 5, 20],
        "model__reg_lambda": loguniform(0.1, 10),
    }
    return [("model", model)], space


CANDIDATES: dict[str, Callable[[list[int], int], tuple[list, dict]]] = {
    "logistic_regression": _logistic,
    "random_forest": _random_forest,
    "xgboost": _xgboost,
}


def build_pipeline(name: str, spec: DatasetSpec, monotone: list[int], seed: int) -> tuple:
    """features -> SMOTE (training folds only) -> model; and its search space."""
    if name not in CANDIDATES:
        raise TrainingError(f"unknown model {name!r} (choose from {', '.join(CANDIDATES)})")
    steps, space = CANDIDATES[name](monotone, seed)
    pipe = Pipeline([("features", FeatureTransformer(spec)), ("smote", SMOTE(random_state=seed)),
                     *steps])
    return pipe, space


# -- splitting -------------------------------------------------------------------------
def split(df: pd.DataFrame, y: np.ndarray, test_size: float, seed: int,
          key: str | None = None) -> tuple:
    """The one train/test split. Nothing downstream sees the test part.

    With a key column, a row's side follows from a seeded hash of its key, so the same
    application (or customer) stays on the same side in every later snapshot, and a model
    trained on an earlier snapshot never saw the later test rows. Without one: a stratified,
    seeded random split.
    """
    if len(np.unique(y)) < 2:
        raise TrainingError("the target has a single class: nothing to learn")
    if key is None:
        return train_test_split(df, y, test_size=test_size, random_state=seed, stratify=y)
    hashed = pd.util.hash_pandas_object(df[key].astype(str) + f"|{seed}", index=False)
    test = (hashed.to_numpy() / 2.0**64) < test_size
    if len(np.unique(y[test])) < 2 or len(np.unique(y[~test])) < 2:
        raise TrainingError(f"splitting by {key!r} leaves one side with a single class")
    return df[~test], df[test], y[~test], y[test]


def _oof_predictions(pipe: Pipeline, X: pd.DataFrame, y: np.ndarray, folds: StratifiedKFold):
    """Out-of-fold PDs; SMOTE runs inside each training fold only (imblearn Pipeline)."""
    from sklearn.metrics import roc_auc_score

    oof = np.zeros(len(y))
    aucs = []
    for train_idx, val_idx in folds.split(X, y):
        fitted = clone(pipe).fit(X.iloc[train_idx], y[train_idx])
        oof[val_idx] = raw_pd(fitted, X.iloc[val_idx])
        aucs.append(roc_auc_score(y[val_idx], oof[val_idx]))
    return oof, float(np.mean(aucs))


def train_candidate(
    name: str, X: pd.DataFrame, y: np.ndarray, spec: DatasetSpec, settings: Settings
) -> Candidate:
    """Bounded random search by CV ROC-AUC, then refit, calibrate on OOF PDs, pick threshold."""
    start = time.perf_counter()
    spec, monotone = _fixed_vocabulary(spec, X)
    pipe, space = build_pipeline(name, spec, monotone, settings.seed)
    minority = int(min(y.sum(), len(y) - y.sum()))
    k = min(5, max(1, minority * (settings.cv_folds - 1) // settings.cv_folds - 1))
    pipe.set_params(smote__k_neighbors=k)
    folds = StratifiedKFold(settings.cv_folds, shuffle=True, random_state=settings.seed)
    sampler = ParameterSampler(space, settings.search_iterations, random_state=settings.seed)
    best: tuple[float, dict, np.ndarray] | None = None
    trials: list[dict[str, Any]] = []
    for params in sampler:
        budget = settings.search_time_budget_s
        if best is not None and budget and time.perf_counter() - start > budget:
            log.info("%s: search stopped by the time budget after %d trials", name, len(trials))
            break
        oof, auc = _oof_predictions(clone(pipe).set_params(**params), X, y, folds)
        trials.append({"params": _plain(params), "cv_roc_auc": auc})
        log.info("%s %s cv_roc_auc=%.4f", name, _plain(params), auc)
        if best is None or auc > best[0]:
            best = (auc, params, oof)
    assert best is not None
    auc, params, oof = best
    final = clone(pipe).set_params(**params).fit(X, y)
    calibrator = _fit_calibrator(oof, y, settings.calibration, settings.pd_floor)
    model = CalibratedModel(final, calibrator)
    calibrated_oof = model.calibrate(oof)
    threshold = choose_threshold(y, calibrated_oof, settings)
    validation = {
        "ece_uncalibrated": expected_calibration_error(y, oof),
        "ece_calibrated": expected_calibration_error(y, calibrated_oof),
    }
    return Candidate(name, _plain(params), auc, model, threshold, validation, trials,
                     time.perf_counter() - start)


def _fixed_vocabulary(spec: DatasetSpec, X: pd.DataFrame) -> tuple[DatasetSpec, list[int]]:
    """The spec with every categorical column's categories fixed from the whole training part
    (no target involved), so that every CV fold encodes the same columns, and the monotone
    constraints for that encoding."""
    fitted = FeatureTransformer(spec).fit(X)
    columns = {n: c.model_copy(update={"categories": fitted.categories_[n]})
               if n in fitted.categories_ else c for n, c in spec.columns.items()}
    return spec.model_copy(update={"columns": columns}), fitted.monotone_constraints()


def choose_threshold(y: np.ndarray, pd_: np.ndarray, settings: Settings) -> float:
    """The High/Low threshold by the configured policy, on validation PDs."""
    if settings.threshold_policy == "recall":
        return recall_threshold(y, pd_, settings.target_recall)
    return cost_minimising_threshold(y, pd_, settings.cost_missed_default,
                                     settings.cost_rejected_good)


def _fit_calibrator(raw: np.ndarray, y: np.ndarray, method: str, floor: float):
    if method == "isotonic":
        return IsotonicRegression(y_min=floor, y_max=1.0 - floor, out_of_bounds="clip").fit(raw, y)
    return LogisticRegression().fit(_logit(raw).reshape(-1, 1), y)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Search parameters as JSON-friendly values, without the pipeline prefix."""
    out = {}
    for k, v in params.items():
        out[k.removeprefix("model__")] = v.item() if isinstance(v, np.generic) else v
    return out
