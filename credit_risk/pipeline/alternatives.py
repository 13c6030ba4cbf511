"""The least discriminatory alternative: when the selected candidate fails the fairness gate
(or in every run, when configured), search among the candidates and their variants for the
best approval-rate ratio within a set loss of cross-validated ROC-AUC.

The variants are each candidate refitted without a feature that drives the disparity, with
the parameters its search chose (no new search): the cost is one cross-validation and one
refit per variant. The drivers are measured on the selected candidate: each model feature in
turn is set to its typical value on the training rows, and the approval-rate ratio (at the
same approval rate) compared. Every alternative is judged on cross-validated figures (the
out-of-fold PDs of the training part, at its own threshold); its test figures are reported,
never used to choose. See docs/modelling.md, "The least discriminatory alternative".
"""

from __future__ import annotations

import logging
import time
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from credit_risk.config import Settings
from credit_risk.pipeline.fairness import fairness_report
from credit_risk.pipeline.policy_reports import Alternative, AlternativeSearch, Driver
from credit_risk.pipeline.run_paths import RunPaths, makedirs, open_file
from credit_risk.pipeline.run_reports import Fairness, GateLimits
from credit_risk.pipeline.scorecard_train import NAME as SCORECARD
from credit_risk.pipeline.scorecard_train import train_scorecard
from credit_risk.pipeline.train import (
    Candidate,
    _raw_of_rows,
    finish_search,
    prepare_folds,
    run_trial,
    search_setup,
)
from credit_risk.spec.dataset import DatasetSpec
from credit_risk.spec.expressions import parse_expression

log = logging.getLogger(__name__)
DRIVER_ROWS = 20_000  # training rows the drivers are measured on (a seeded sample)


def worst_ratio(fairness: Fairness) -> float | None:
    """The lowest approval-rate ratio over the protected attributes (None: none judged)."""
    ratios = [a.ratio for a in fairness.attributes.values() if a.ratio is not None]
    return min(ratios) if ratios else None


def should_search(settings: Settings, fairness: Fairness) -> str | None:
    """Why the search runs ("fairness gate failed", "always"), or None when it does not."""
    mode = settings.policy.lda_search
    if mode == "off":
        return None
    if not fairness.passed:
        return "fairness gate failed"
    return "always" if mode == "always" else None


def spec_without(spec: DatasetSpec, features: list[str]) -> DatasetSpec:
    """The spec with these model features removed (a derived feature dropped, a column no
    longer a feature), and the rules on fields no longer asked for dropped."""
    if not features:
        return spec
    data = spec.model_dump(mode="json")
    for name in features:
        if name in data["derived"]:
            del data["derived"][name]
        elif name in data["columns"]:
            data["columns"][name]["feature"] = False
        else:
            raise ValueError(f"{name!r} is not a feature of dataset spec {spec.name!r}")
    inputs = set(DatasetSpec.model_validate({**data, "rules": []}).input_columns())
    data["rules"] = [r for r in data["rules"] if r.get("field") in (None, *inputs)
                     and set(parse_expression(r["check"]).names) <= inputs]
    return DatasetSpec.model_validate(data)


def _raw_pd(candidate: Candidate, matrix: np.ndarray) -> np.ndarray:
    """The candidate's uncalibrated PDs of feature rows (its steps after the features and
    SMOTE): they order the rows as its PDs do, without the calibration's ties."""
    rows: Any = matrix
    for name, step in candidate.model.pipeline.steps[1:-1]:
        if name != "smote":  # SMOTE resamples training folds only (a scorecard has none)
            rows = step.transform(rows)
    return _raw_of_rows(candidate.model.pipeline.steps[-1][1], rows)


def _feature_columns(candidate: Candidate) -> dict[str, list[int]]:
    """Each model feature (a spec column or derived feature) and its matrix columns (a
    categorical field: its one-hot columns)."""
    features = candidate.model.features
    out: dict[str, list[int]] = {}
    for i, name in enumerate(features.feature_names_out_):
        field = name.split("=", 1)[0]
        out.setdefault(field if field in features.categorical_ else name, []).append(i)
    return out


def find_drivers(candidate: Candidate, X: pd.DataFrame, spec: DatasetSpec,
                 limits: GateLimits, min_group: int, seed: int) -> list[Driver]:
    """Every model feature with the candidate's worst approval-rate ratio when the feature is
    neutralised (numbers at their median, categories at the most frequent one), at the same
    approval rate; the largest gain first."""
    if len(X) > DRIVER_ROWS:
        X = X.sample(DRIVER_ROWS, random_state=seed)
    matrix = np.asarray(candidate.model.features.transform(X), dtype=float)
    base = _raw_pd(candidate, matrix)
    approved = int((candidate.model.calibrate(base) < candidate.threshold).sum())

    def ratio(p: np.ndarray) -> float | None:
        """The worst ratio when the `approved` lowest-PD rows are approved."""
        ranks = np.argsort(np.argsort(p, kind="stable"), kind="stable")
        return worst_ratio(fairness_report(X, ranks, approved, spec, limits.min_approval_ratio,
                                           min_group))

    base_ratio = ratio(base)
    if base_ratio is None:
        return []
    drivers = []
    for name, cols in _feature_columns(candidate).items():
        neutral = matrix.copy()
        if len(cols) == 1 and name not in candidate.model.features.categorical_:
            neutral[:, cols[0]] = np.median(matrix[:, cols[0]])
        else:
            typical = cols[int(np.argmax(matrix[:, cols].mean(axis=0)))]
            neutral[:, cols] = 0.0
            neutral[:, typical] = 1.0
        r = ratio(_raw_pd(candidate, neutral))
        if r is not None:
            drivers.append(Driver(feature=name, ratio=r, gain=r - base_ratio))
    return sorted(drivers, key=lambda d: -d.gain)


def refit_without(candidate: Candidate, features: list[str], X: pd.DataFrame, y: np.ndarray,
                  spec: DatasetSpec, settings: Settings) -> Candidate:
    """The candidate refitted without `features`, with its chosen parameters: one
    cross-validation (its out-of-fold PDs, calibration and threshold) and one refit."""
    start = time.perf_counter()
    if candidate.name == SCORECARD:  # bins and C searched again on the shared folds
        variant = train_scorecard(X, y, spec_without(spec, features), settings)
    else:
        search, _ = search_setup(candidate.name, X, spec_without(spec, features), settings)
        params = {f"model__{k}": v for k, v in candidate.params.items() if k != "without"}
        trial = run_trial(search, prepare_folds(search, X, y), y, params)
        variant = finish_search(candidate.name, search, X, y, trial, [], start)
    variant.name = f"{candidate.name}_without_{'_'.join(features)}"
    variant.params = {**variant.params, "without": features}
    return variant


def _alternative(c: Candidate, base: str, floor: float, train: tuple, test: tuple,
                 spec: DatasetSpec, limits: GateLimits, min_group: int) -> Alternative:
    """An alternative's cross-validated figures (its out-of-fold PDs) and test figures."""
    (X, _), (Xt, yt) = train, test
    pt = c.model.predict_pd(Xt)
    test_ratio = worst_ratio(fairness_report(Xt, pt, c.threshold, spec,
                                             limits.min_approval_ratio, min_group))
    figures: dict[str, Any] = dict(
        model=c.name, base=base, without=list(c.params.get("without", [])),
        cv_roc_auc=c.cv_roc_auc, within_auc=c.cv_roc_auc >= floor - 1e-12,
        test_roc_auc=float(roc_auc_score(yt, pt)) if len(np.unique(yt)) == 2 else None,
        test_ratio=test_ratio, test_approval_rate=float((pt < c.threshold).mean()))
    if c.oof is None:
        return Alternative(**figures, cv_ratio=None, cv_approval_rate=None,
                           note="trained without out-of-fold PDs kept: not judged")
    return Alternative(**figures, cv_approval_rate=float((c.oof < c.threshold).mean()),
                       cv_ratio=worst_ratio(fairness_report(
                           X, c.oof, c.threshold, spec, limits.min_approval_ratio, min_group)))


def search_alternatives(settings: Settings, spec: DatasetSpec, trigger: str,
                        candidates: dict[str, Candidate], selected: str, train: tuple,
                        test: tuple, limits: GateLimits,
                        run: RunPaths[Any]) -> tuple[AlternativeSearch, dict[str, str]]:
    """The search, and the variants it fitted: {name: candidate file} (saved in the run's
    candidates folder, so that one can be published)."""
    policy, min_group = settings.policy, settings.gate.fairness_min_group_size
    X, y = train
    best = candidates[selected]
    drivers = find_drivers(best, X, spec, limits, min_group, settings.training.seed)
    chosen_drivers = [d.feature for d in drivers if d.gain > 0][:policy.lda_drivers]
    floor = best.cv_roc_auc - policy.lda_max_auc_loss
    pool: list[tuple[Candidate, str]] = [(c, c.name) for c in candidates.values()]
    saved: dict[str, str] = {}
    notes: list[Alternative] = []
    for feature in chosen_drivers:
        for c in candidates.values():
            try:
                variant = refit_without(c, [feature], X, y, spec, settings)
            except Exception as exc:  # a variant that cannot be fitted is reported, not fatal
                log.warning("alternative %s without %s: %s", c.name, feature, exc)
                notes.append(Alternative(model=f"{c.name}_without_{feature}", base=c.name,
                                         without=[feature], cv_roc_auc=None,
                                         cv_ratio=None, cv_approval_rate=None,
                                         within_auc=False, note=f"not fitted: {exc}"))
                continue
            path = run.candidate(variant.name)
            makedirs(run.candidates)
            with open_file(path, "wb") as fh:
                joblib.dump(variant, fh)
            saved[variant.name] = str(path)
            pool.append((variant, c.name))
    tried = [_alternative(c, base, floor, train, test, spec, limits, min_group)
             for c, base in pool] + notes
    chosen, outcome = _choose(tried, selected, trigger, limits.min_approval_ratio, policy)
    search = AlternativeSearch(trigger=trigger, selected=selected,
                               max_auc_loss=policy.lda_max_auc_loss,
                               min_ratio=limits.min_approval_ratio, drivers=drivers[:10],
                               tried=tried, chosen=chosen, outcome=outcome)
    log.info("least discriminatory alternative: %s", outcome)
    return search, saved


def _choose(tried: list[Alternative], selected: str, trigger: str, min_ratio: float,
            policy: Any) -> tuple[str | None, str]:
    """The alternative with the best cross-validated ratio within the AUC loss, when it
    passes the ratio and the search was triggered by the failure; and the outcome in words."""
    own = next(a for a in tried if a.model == selected)
    eligible = [a for a in tried if a.model != selected and a.within_auc
                and a.cv_ratio is not None]
    if not eligible:
        return None, (f"none: no alternative within {policy.lda_max_auc_loss:.4f} of "
                      f"{selected}'s cross-validated ROC-AUC {own.cv_roc_auc:.4f}")
    best = max(eligible, key=lambda a: (a.cv_ratio, a.cv_roc_auc))
    assert best.cv_ratio is not None
    found = (f"{best.model} (cross-validated ROC-AUC {best.cv_roc_auc:.4f}, approval-rate "
             f"ratio {best.cv_ratio:.3f})")
    if best.cv_ratio < min_ratio:
        return None, (f"none: the best within {policy.lda_max_auc_loss:.4f} of the ROC-AUC, "
                      f"{found}, is below the required ratio {min_ratio:.2f}")
    if trigger != "fairness gate failed":
        return None, f"{selected} passes the fairness gate; the best alternative is {found}"
    return best.model, f"{found} replaces {selected}"
