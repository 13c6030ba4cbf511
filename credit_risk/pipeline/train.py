"""Training: candidates with SMOTE inside the CV folds, a bounded search, calibration, threshold.

The search runs fold by fold on matrices prepared once per fold and shared by every trial
(features fitted on the fold's training rows, SMOTE on them only), so a trial costs one model
fit per fold. Settings choose the shortcuts that change the statistics (see README
"Modelling"): SMOTE to `smote_ratio` of the majority class, successive halving of the trials
over growing stratified samples, and XGBoost's early stopping on a part of each fold's own
training rows that SMOTE never sees.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import ParameterSampler, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline as ModelSteps
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from credit_risk.config import Settings
from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.calibration import Calibration, fit_calibration
from credit_risk.pipeline.decision_policy import exposure_of, policy_threshold
from credit_risk.pipeline.evaluate import expected_calibration_error
from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.scoring.grades import MasterScale
from credit_risk.scoring.plan import expit
from credit_risk.spec.dataset import DatasetSpec

log = logging.getLogger(__name__)


class TrainingError(CreditRiskError, RuntimeError):
    """The data or the settings cannot train a model (a single class, an unknown model)."""


@dataclass
class CalibratedModel:
    """A fitted feature+model pipeline, the calibrator fitted on its out-of-fold PDs and the
    master scale its PDs are graded on."""

    pipeline: Pipeline
    calibrator: Calibration
    master_scale: MasterScale = field(default_factory=MasterScale.default)

    @property
    def features(self) -> FeatureTransformer:
        return self.pipeline.named_steps["features"]

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        return raw_pd(self.pipeline, X)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return self.calibrator.predict(raw)

    def predict_pd(self, X: pd.DataFrame) -> np.ndarray:
        return self.calibrate(self.predict_raw(X))


def raw_pd(pipe: Pipeline, X: pd.DataFrame) -> np.ndarray:
    """Uncalibrated P(default) of raw rows through the fitted pipeline."""
    rows: Any = X
    for _, step in pipe.steps[:-1]:
        if not hasattr(step, "fit_resample"):  # samplers act in fit only
            rows = step.transform(rows)
    return _raw_of_rows(pipe.steps[-1][1], rows)


def _raw_of_rows(est: Any, rows: Any) -> np.ndarray:
    """Uncalibrated P(default) of feature rows. For XGBoost: the logistic link in float64 on its
    float32 margin (up to `best_iteration` when early stopping set one), exactly as the
    scoring plan computes it (XGBoost's own float32 sigmoid differs in the last bits, which a
    steep part of the isotonic calibration turns into PD differences)."""
    if isinstance(est, XGBClassifier):
        best = getattr(est, "best_iteration", None)
        margin = est.get_booster().inplace_predict(
            np.asarray(rows, dtype=np.float32), predict_type="margin", validate_features=False,
            iteration_range=(0, best + 1) if best is not None else (0, 0))
        return expit(np.asarray(margin, dtype=np.float64).reshape(-1))
    return np.asarray(est.predict_proba(rows)[:, 1], dtype=float)


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
    # where fit_seconds went: the folds' features and SMOTE, the trials' fits, the refit
    timings: dict[str, float] = field(default_factory=dict)
    oof: np.ndarray | None = None  # calibrated out-of-fold PDs of the training rows, in order


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


def forest_samples(share: float, n_rows: int, max_rows: int) -> float:
    """Each tree's bootstrap sample as a share of n_rows: `share`, but at most max_rows rows,
    so that a forest's cost stops growing with the data (README "Modelling")."""
    return min(share, max_rows / max(n_rows, 1))


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
# The fixed parameters of each model's plain reference (benchmarks/bench_train_cost.py): the
# middle of its search space.
REFERENCE_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"model__C": 1.0},
    "random_forest": {"model__max_depth": 8, "model__min_samples_leaf": 20,
                      "model__max_features": "sqrt"},
    "xgboost": {"model__max_depth": 4, "model__learning_rate": 0.1,
                "model__min_child_weight": 5, "model__reg_lambda": 1.0},
}


def smote_target(y: np.ndarray, ratio: float = 1.0) -> dict[Any, int]:
    """SMOTE's sampling strategy: the minority class grown to `ratio` x the majority class's
    rows (1.0: balanced, imblearn's "auto"), never shrunk below the rows it has."""
    classes, counts = np.unique(y, return_counts=True)
    minority = classes[int(np.argmin(counts))]
    return {minority: max(int(counts.min()), int(round(ratio * counts.max())))}


def build_pipeline(name: str, spec: DatasetSpec, monotone: list[int], seed: int,
                   smote_ratio: float = 1.0) -> tuple:
    """features -> SMOTE (training folds only) -> model; and its search space."""
    if name not in CANDIDATES:
        raise TrainingError(f"unknown model {name!r} (choose from {', '.join(CANDIDATES)})")
    steps, space = CANDIDATES[name](monotone, seed)
    smote = SMOTE(sampling_strategy=partial(smote_target, ratio=smote_ratio), random_state=seed)
    pipe = Pipeline([("features", FeatureTransformer(spec)), ("smote", smote), *steps])
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


# -- the search: folds prepared once, trials fitted on them ------------------------------
# Early stopping needs this many rows of each class in a fold's stopping part: on fewer, its
# ROC-AUC is too noisy to stop on, and the model gets its full number of trees.
MIN_STOPPING_CLASS_ROWS = 200


@dataclass
class Fold:
    """One CV fold's matrices, shared by every trial: SMOTE'd fitting rows, the real rows kept
    for early stopping (None without it), and the held-out rows with their positions."""

    X: np.ndarray
    y: np.ndarray
    stop: tuple[np.ndarray, np.ndarray] | None
    val_X: np.ndarray
    val_idx: np.ndarray


@dataclass
class Search:
    """What every fit of one candidate shares."""

    pipe: Pipeline
    settings: Settings
    dtype: type
    timings: dict[str, float] = field(default_factory=dict)

    def timed(self, part: str, since: float) -> None:
        self.timings[part] = self.timings.get(part, 0.0) + time.perf_counter() - since

    @property
    def early_stopping(self) -> bool:
        return bool(self.settings.training.early_stopping_rounds) and isinstance(
            self.pipe.steps[-1][1], XGBClassifier)

    def smote_for(self, y: np.ndarray) -> SMOTE:
        """The pipeline's SMOTE with k_neighbors fitting the minority class of y."""
        minority = int(min(y.sum(), len(y) - y.sum()))
        return clone(self.pipe.named_steps["smote"]).set_params(
            k_neighbors=max(1, min(5, minority - 1)))

    def head(self, params: dict[str, Any], stopping: bool = False,
             trees: int | None = None) -> ModelSteps:
        """The steps after SMOTE (e.g. scaler, model), unfitted, with the trial's params;
        XGBoost with early stopping, or with a fixed number of trees."""
        head = ModelSteps([(n, clone(s)) for n, s in self.pipe.steps[2:]]).set_params(**params)
        model = head.steps[-1][1]
        if stopping:
            model.set_params(early_stopping_rounds=self.settings.training.early_stopping_rounds,
                             eval_metric="auc")
        elif trees is not None:
            model.set_params(n_estimators=trees)
        return head

    def prepare(self, X: pd.DataFrame, y: np.ndarray, train: np.ndarray,
                val: np.ndarray) -> Fold:
        """Features fitted on the fold's training rows; SMOTE on its fitting part only."""
        features = clone(self.pipe.named_steps["features"]).fit(X.iloc[train])
        Xt = features.transform(X.iloc[train]).astype(self.dtype, copy=False)
        yt = y[train]
        stop = None
        if self.early_stopping and min(yt.sum(), len(yt) - yt.sum()) \
                * self.settings.training.early_stopping_fraction >= MIN_STOPPING_CLASS_ROWS:
            fit, held = train_test_split(np.arange(len(yt)), stratify=yt,
                                         test_size=self.settings.training.early_stopping_fraction,
                                         random_state=self.settings.training.seed)
            stop = (Xt[held], yt[held])
            Xt, yt = Xt[fit], yt[fit]
        Xr, yr = self.smote_for(yt).fit_resample(Xt, yt)
        val_X = features.transform(X.iloc[val]).astype(self.dtype, copy=False)
        return Fold(Xr, yr, stop, val_X, val)

    def fit(self, head: ModelSteps, X: np.ndarray, y: np.ndarray,
            stop: tuple[np.ndarray, np.ndarray] | None) -> ModelSteps:
        model = head.steps[-1][1]
        if isinstance(model, RandomForestClassifier):
            model.set_params(max_samples=forest_samples(model.max_samples, len(y),
                                                        self.settings.training.forest_max_tree_rows))
        if stop is None:
            return head.fit(X, y)
        head.fit(X, y, model__eval_set=[stop], model__verbose=False)
        return head


def _rungs(n_rows: int, n_trials: int, settings: Settings) -> list[tuple[int, int]]:
    """(rows, trials) per rung of the search. Random search: all trials on all rows. Halving:
    each rung keeps the best 1/factor of the trials on factor x the rows, the last one a
    single trial on all rows (its out-of-fold PDs are the calibration's data)."""
    if settings.training.search_strategy == "random" or n_trials == 1:
        return [(n_rows, n_trials)]
    factor = settings.training.halving_factor
    counts = [n_trials]
    while counts[-1] > 1:
        counts.append(math.ceil(counts[-1] / factor))
    last = len(counts) - 1
    least = settings.training.halving_min_rows
    rows = [min(n_rows, max(least, round(n_rows / factor ** (last - i))))
            for i in range(len(counts))]
    return list(zip(rows, counts, strict=True))


def _subsample(y: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """A stratified, seeded sample of `rows` positions (all of them when rows >= len(y))."""
    if rows >= len(y):
        return np.arange(len(y))
    keep, _ = train_test_split(np.arange(len(y)), train_size=rows, stratify=y, random_state=seed)
    return np.sort(keep)


@dataclass
class Trial:
    params: dict[str, Any]
    auc: float
    oof: np.ndarray
    trees: list[int]


def prepare_folds(search: Search, X: pd.DataFrame, y: np.ndarray) -> list[Fold]:
    """The CV folds of (X, y), each prepared once for every trial (a fixed seed: the same
    folds in every process)."""
    settings = search.settings
    folds = StratifiedKFold(settings.training.cv_folds, shuffle=True,
                            random_state=settings.training.seed)
    since = time.perf_counter()
    prepared = [search.prepare(X, y, tr, va) for tr, va in folds.split(X, y)]
    search.timed("folds", since)
    return prepared


def run_trial(search: Search, prepared: list[Fold], y: np.ndarray,
               params: dict[str, Any]) -> Trial:
    """One trial fitted on every prepared fold: its out-of-fold PDs and mean ROC-AUC."""
    oof, aucs, trees = np.zeros(len(y)), [], []
    for fold in prepared:
        head = search.fit(search.head(params, fold.stop is not None), fold.X, fold.y, fold.stop)
        model = head.steps[-1][1]
        oof[fold.val_idx] = _raw_of_rows(model, head[:-1].transform(fold.val_X)
                                         if len(head) > 1 else fold.val_X)
        aucs.append(roc_auc_score(y[fold.val_idx], oof[fold.val_idx]))
        if fold.stop is not None:
            trees.append(int(model.best_iteration) + 1)
    return Trial(params, float(np.mean(aucs)), oof, trees)


def _run_rung(search: Search, X: pd.DataFrame, y: np.ndarray, trials: list[dict[str, Any]],
              start: float) -> list[Trial]:
    """Each trial's out-of-fold PDs and mean ROC-AUC over the CV folds of (X, y); stops
    starting trials once the time budget is spent (at least one always runs)."""
    prepared = prepare_folds(search, X, y)
    since = time.perf_counter()
    out: list[Trial] = []
    for params in trials:
        budget = search.settings.training.search_time_budget_s
        if out and budget and time.perf_counter() - start > budget:
            log.info("search stopped by the time budget after %d trials", len(out))
            break
        out.append(run_trial(search, prepared, y, params))
    search.timed("trials", since)
    return out


def search_setup(name: str, X: pd.DataFrame, spec: DatasetSpec,
                  settings: Settings) -> tuple[Search, list[dict[str, Any]]]:
    """What every fit of a candidate shares, and its trials (the seeded ParameterSampler)."""
    spec, monotone = _fixed_vocabulary(spec, X)
    training = settings.training
    pipe, space = build_pipeline(name, spec, monotone, training.seed, training.smote_ratio)
    # LR's coefficients are float64 in the scoring plan; trees split on float32 anyway.
    dtype = np.float64 if name == "logistic_regression" else np.float32
    trials = list(ParameterSampler(space, training.search_iterations,
                                   random_state=training.seed))
    return Search(pipe, settings, dtype), trials


def ranked(name: str, results: list[Trial], rows: int, rung: int,
            records: list[dict[str, Any]]) -> list[Trial]:
    """A rung's trials, best CV ROC-AUC first (stable: ties keep the sampler's order); each
    one's record appended to `records`."""
    for r in results:
        records.append({"params": _plain(r.params), "cv_roc_auc": r.auc, "rows": rows,
                        "rung": rung, **({"trees": r.trees} if r.trees else {})})
        log.info("%s rung %d (%d rows) %s cv_roc_auc=%.4f", name, rung, rows, _plain(r.params),
                 r.auc)
    return sorted(results, key=lambda r: -r.auc)


def train_candidate(
    name: str, X: pd.DataFrame, y: np.ndarray, spec: DatasetSpec, settings: Settings
) -> Candidate:
    """Search by CV ROC-AUC (random or successive halving), refit on all training rows,
    calibrate on the chosen trial's out-of-fold PDs, pick the threshold."""
    if name == "scorecard":  # optimal bins + regression on WoE, on the same folds
        from credit_risk.pipeline.scorecard_train import train_scorecard
        return train_scorecard(X, y, spec, settings)
    start = time.perf_counter()
    search, pending = search_setup(name, X, spec, settings)
    records: list[dict[str, Any]] = []
    results: list[Trial] = []
    rungs = _rungs(len(y), len(pending), settings)
    for rung, (rows, keep) in enumerate(rungs):
        over = settings.training.search_time_budget_s and \
            time.perf_counter() - start > settings.training.search_time_budget_s
        pending = pending[:1] if over else pending[:keep]
        if rung and rows == rungs[rung - 1][0]:  # the same sample again: the same results
            results = [r for r in results if r.params in pending]
            continue
        idx = _subsample(y, rows, settings.training.seed)
        results = ranked(name, _run_rung(search, X.iloc[idx], y[idx], pending, start),
                          len(idx), rung, records)
        pending = [r.params for r in results]
    return finish_search(name, search, X, y, results[0], records, start)


def finish_search(name: str, search: Search, X: pd.DataFrame, y: np.ndarray, best: Trial,
            records: list[dict[str, Any]], start: float) -> Candidate:
    """The chosen trial refitted on all training rows, calibrated on its out-of-fold PDs, its
    threshold; fit_seconds counted from `start` (perf_counter)."""
    settings = search.settings
    trees = round(float(np.mean(best.trees))) if best.trees else None
    since = time.perf_counter()
    final = _refit(search, X, y, best.params, trees)
    search.timed("refit", since)
    calibrator = fit_calibration(best.oof, y, settings)
    model = CalibratedModel(final, calibrator, MasterScale.of(settings.pd.master_scale))
    calibrated_oof = model.calibrate(best.oof)
    exposure = exposure_of(search.pipe.named_steps["features"].spec, X)
    threshold = choose_threshold(y, calibrated_oof, settings, exposure)
    validation = {
        "ece_uncalibrated": expected_calibration_error(y, best.oof),
        "ece_calibrated": expected_calibration_error(y, calibrated_oof),
        **{f"cv_log_loss_{m}": v for m, v in calibrator.cv_log_loss.items()},
    }
    params = _plain(best.params) | ({"n_estimators": trees} if trees else {})
    return Candidate(name, params, best.auc, model, threshold, validation, records,
                     time.perf_counter() - start, search.timings, calibrated_oof)


def _refit(search: Search, X: pd.DataFrame, y: np.ndarray, params: dict[str, Any],
           trees: int | None) -> Pipeline:
    """The chosen trial on every training row (XGBoost: with the folds' mean number of trees
    when early stopping chose them); returned as one fitted features -> SMOTE -> model
    pipeline."""
    features = clone(search.pipe.named_steps["features"]).fit(X)
    Xt = features.transform(X).astype(search.dtype, copy=False)
    smote = search.smote_for(y)
    Xr, yr = smote.fit_resample(Xt, y)
    head = search.fit(search.head(params, trees=trees), Xr, yr, None)
    return Pipeline([("features", features), ("smote", smote), *head.steps])


def _fixed_vocabulary(spec: DatasetSpec, X: pd.DataFrame) -> tuple[DatasetSpec, list[int]]:
    """The spec with every categorical column's categories fixed from the whole training part
    (no target involved), so that every CV fold encodes the same columns, and the monotone
    constraints for that encoding."""
    fitted = FeatureTransformer(spec).fit(X)
    columns = {n: c.model_copy(update={"categories": fitted.categories_[n]})
               if n in fitted.categories_ else c for n, c in spec.columns.items()}
    return spec.model_copy(update={"columns": columns}), fitted.monotone_constraints()


def choose_threshold(y: np.ndarray, pd_: np.ndarray, settings: Settings,
                     exposure: np.ndarray | None = None) -> float:
    """The High/Low threshold by the configured decision policy, on validation PDs."""
    return policy_threshold(y, pd_, settings.policy, exposure)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Search parameters as JSON-friendly values, without the pipeline prefix."""
    out = {}
    for k, v in params.items():
        out[k.removeprefix("model__")] = v.item() if isinstance(v, np.generic) else v
    return out
