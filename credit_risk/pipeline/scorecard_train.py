"""Training of the points scorecard: optimal binning per field, logistic regression on WoE.

It competes with the other candidates on the same CV folds (the same seeded
StratifiedKFold of all training rows) and is chosen, calibrated and thresholded the same way;
what differs, and why:

- No SMOTE and no class weights. WoE is computed from each bin's shares of defaults and
  non-defaults, so it needs no balancing; synthetic rows would interpolate between one-hot
  columns (categories that do not exist) and shift every bin's default rate; and an unweighted
  logistic regression keeps its PDs on the data's own scale, so the points add up to the
  score the API shows.
- Calibration is Platt scaling (sigmoid) on the out-of-fold logits, whatever
  ``CALIBRATION`` says: a linear map of the log-odds, folded into the points table, so that a
  row's points still add up to its score.
- Float64 feature rows: the bins' edges are compared with what serving computes.
- The bins are fitted once per fold and shared by every trial of the search (over the
  regression's C); each trial costs one regression per fold, so there is no halving.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import ParameterSampler, StratifiedKFold

from credit_risk.config import Settings
from credit_risk.pipeline.calibration import Calibration, fit_sigmoid
from credit_risk.pipeline.decision_policy import exposure_of
from credit_risk.pipeline.evaluate import expected_calibration_error
from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.pipeline.scorecard import ScorecardBinning, field_strengths, scorecard_fields
from credit_risk.pipeline.train import (
    CalibratedModel,
    Candidate,
    Fold,
    Trial,
    _fixed_vocabulary,
    choose_threshold,
    ranked,
)
from credit_risk.scoring.grades import MasterScale
from credit_risk.spec.dataset import DatasetSpec

log = logging.getLogger(__name__)
NAME = "scorecard"
SPACE = {"C": loguniform(1e-3, 10)}  # the logistic regression's, as the linear candidate's


def _regression(params: dict[str, Any]) -> LogisticRegression:
    return LogisticRegression(max_iter=2000, **params)


def _fold(spec: DatasetSpec, binning: ScorecardBinning, X: pd.DataFrame, y: np.ndarray,
          train: np.ndarray, val: np.ndarray) -> Fold:
    """A fold's WoE rows: features and bins fitted on its training rows only."""
    features = FeatureTransformer(spec).fit(X.iloc[train])
    rows = features.transform(X.iloc[train])
    fitted = ScorecardBinning(binning.fields).fit(rows, y[train])
    return Fold(fitted.transform(rows), y[train], None,
                fitted.transform(features.transform(X.iloc[val])), val)


def train_scorecard(X: pd.DataFrame, y: np.ndarray, spec: DatasetSpec,
                    settings: Settings) -> Candidate:
    """Search C by CV ROC-AUC on the shared folds, refit bins and regression on all training
    rows, calibrate (sigmoid) on the chosen trial's out-of-fold PDs, pick the threshold."""
    start = time.perf_counter()
    training, timings = settings.training, {}
    spec, _ = _fixed_vocabulary(spec, X)
    binning = ScorecardBinning(scorecard_fields(spec, settings))
    folds = StratifiedKFold(training.cv_folds, shuffle=True, random_state=training.seed)
    prepared = [_fold(spec, binning, X, y, tr, va) for tr, va in folds.split(X, y)]
    timings["folds"] = time.perf_counter() - start
    since = time.perf_counter()
    results: list[Trial] = []
    for params in ParameterSampler(SPACE, training.search_iterations, random_state=training.seed):
        budget = training.search_time_budget_s
        if results and budget and time.perf_counter() - start > budget:
            log.info("scorecard search stopped by the time budget after %d trials", len(results))
            break
        oof, aucs = np.zeros(len(y)), []
        for fold in prepared:
            model = _regression(params).fit(fold.X, fold.y)
            oof[fold.val_idx] = model.predict_proba(fold.val_X)[:, 1]
            aucs.append(roc_auc_score(y[fold.val_idx], oof[fold.val_idx]))
        results.append(Trial(params, float(np.mean(aucs)), oof, []))
    timings["trials"] = time.perf_counter() - since
    records: list[dict[str, Any]] = []
    best = ranked(NAME, results, len(y), 0, records)[0]
    since = time.perf_counter()
    model = CalibratedModel(_refit(spec, binning, X, y, best.params),
                            Calibration(*fit_sigmoid(best.oof, y, settings.pd.floor)),
                            MasterScale.of(settings.pd.master_scale))
    timings["refit"] = time.perf_counter() - since
    calibrated_oof = model.calibrate(best.oof)
    strengths = field_strengths(model.pipeline.named_steps["binning"],
                                settings.scorecard.iv_weak, settings.scorecard.iv_strong)
    for s in strengths:
        if s["verdict"] != "ok":
            log.warning("scorecard: field %s has information value %.4f (%s)", s["field"],
                        s["iv"], "weak" if s["verdict"] == "weak" else "suspiciously strong")
    validation = {
        "ece_uncalibrated": expected_calibration_error(y, best.oof),
        "ece_calibrated": expected_calibration_error(y, calibrated_oof),
        "weak_fields": float(sum(s["verdict"] == "weak" for s in strengths)),
        "strong_fields": float(sum(s["verdict"] == "strong" for s in strengths)),
    }
    card = settings.scorecard
    params = {"C": float(best.params["C"]), "max_bins": card.max_bins,
              "min_bin_share": card.min_bin_share, "trend": card.trend,
              "calibration": "sigmoid"}
    threshold = choose_threshold(y, calibrated_oof, settings, exposure_of(spec, X))
    return Candidate(NAME, params, best.auc, model, threshold, validation, records,
                     time.perf_counter() - start, timings, oof=calibrated_oof)


def _refit(spec: DatasetSpec, binning: ScorecardBinning, X: pd.DataFrame, y: np.ndarray,
           params: dict[str, Any]) -> Pipeline:
    """Features, bins and regression fitted on every training row, as one pipeline."""
    features = FeatureTransformer(spec).fit(X)
    rows = features.transform(X)
    fitted = ScorecardBinning(binning.fields).fit(rows, y)
    regression = _regression(params).fit(fitted.transform(rows), y)
    return Pipeline([("features", features), ("binning", fitted), ("model", regression)])
