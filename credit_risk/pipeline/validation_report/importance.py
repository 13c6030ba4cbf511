"""Global feature importance of a fitted model, by the model's own measure where it has one.

- XGBoost: the mean |contribution| of each feature to the log-odds (`pred_contribs`, exact
  TreeSHAP) over the sampled rows.
- Logistic regression: the standardised coefficient, the change in log-odds per standard
  deviation of the feature (signed: positive raises the PD).
- Anything else (the random forest): permutation importance (scikit-learn), the mean drop in
  ROC-AUC when one feature's values are shuffled, over `repeats` shuffles.

Each is computed on a seeded, stratified sample of at most `rows` test rows, so its cost does
not grow with the test set. Features are the model's own columns (a one-hot column per
category), as the model card lists them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline as ModelSteps
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from credit_risk.pipeline.train import CalibratedModel
from credit_risk.pipeline.validation_report.model import FeatureImportance, Importance

DESCRIPTIONS = {
    "xgboost_contributions": "mean |contribution| to the log-odds of default (XGBoost "
                             "pred_contribs)",
    "standardised_coefficients": "change in the log-odds of default per standard deviation of "
                                 "the feature (positive raises the PD)",
    "permutation": "mean drop in test ROC-AUC when the feature is shuffled "
                   "(scikit-learn permutation importance)",
}


def sample_rows(y: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Positions of a seeded sample of at most `rows` rows, stratified when it can be."""
    n = len(y)
    if rows >= n:
        return np.arange(n)
    stratify = y if min(np.bincount(np.asarray(y, dtype=int), minlength=2)) >= 2 else None
    keep, _ = train_test_split(np.arange(n), train_size=rows, random_state=seed,
                               stratify=stratify)
    return np.sort(keep)


def model_importance(model: CalibratedModel, X: pd.DataFrame, y: np.ndarray, rows: int,
                     repeats: int, seed: int) -> Importance:
    """The importance of each of the model's features on a sample of (X, y)."""
    keep = sample_rows(y, rows, seed)
    Xt = np.asarray(model.features.transform(X.iloc[keep]), dtype=float)
    steps = [s for _, s in model.pipeline.steps[1:] if not hasattr(s, "fit_resample")]
    return importance_of(steps, Xt, np.asarray(y)[keep], list(model.features.feature_names_out_),
                         repeats, seed)


def importance_of(steps: list[Any], Xt: np.ndarray, y: np.ndarray, names: list[str],
                  repeats: int, seed: int) -> Importance:
    """The importance of the fitted `steps` (preprocessing, then the classifier) on feature
    rows Xt; ValueError when permutation importance is needed and y has a single class."""
    *pre, est = steps
    if isinstance(est, XGBClassifier) and not pre:
        values, std, method = _contributions(est, Xt), None, "xgboost_contributions"
    elif isinstance(est, LogisticRegression) and est.coef_.shape[0] == 1 \
            and all(isinstance(s, StandardScaler) for s in pre):
        values, std, method = _standardised(est, pre, Xt), None, "standardised_coefficients"
    else:
        if len(np.unique(y)) < 2:
            raise ValueError("the sampled test rows hold a single class: no permutation "
                             "importance")
        estimator = ModelSteps([(f"step{i}", s) for i, s in enumerate(steps)]) if pre else est
        result = permutation_importance(estimator, Xt, y, scoring="roc_auc", n_repeats=repeats,
                                        random_state=seed, n_jobs=1)
        values, std, method = result.importances_mean, result.importances_std, "permutation"
    order = np.argsort(-np.abs(values), kind="stable")
    features = [FeatureImportance(feature=names[j], importance=float(values[j]),
                                  std=None if std is None else float(std[j])) for j in order]
    return Importance(method=method, description=DESCRIPTIONS[method], rows=len(Xt),
                      features=features)


def _contributions(est: XGBClassifier, Xt: np.ndarray) -> np.ndarray:
    best = getattr(est, "best_iteration", None)
    contribs = est.get_booster().predict(
        xgb.DMatrix(Xt.astype(np.float32)), pred_contribs=True,
        iteration_range=(0, best + 1) if best is not None else (0, 0))
    return np.abs(np.asarray(contribs)[:, :-1]).mean(axis=0)  # the last column is the bias


def _standardised(est: LogisticRegression, scalers: list[StandardScaler],
                  Xt: np.ndarray) -> np.ndarray:
    """The coefficient per unit of each input feature, times its standard deviation: the
    first scaler's (the training rows'), else the sample's."""
    sign = 1.0 if int(np.flatnonzero(est.classes_ == 1)[0]) == 1 else -1.0
    per_unit = sign * est.coef_[0]
    for s in reversed(scalers):
        per_unit = per_unit / (s.scale_ if s.with_std else 1.0)
    sd = scalers[0].scale_ if scalers and scalers[0].with_std else Xt.std(axis=0)
    return np.asarray(per_unit * sd, dtype=float)
