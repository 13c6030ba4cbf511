"""The validation report of the selected candidate: computed at publish on the test set.

`validation_report` takes the fitted model, the training and test rows and the grades (a
master scale's, or None for `quantile_grades` of the training PDs); `report_files` gives the
version's files (the JSON report and its figure).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from credit_risk.config import Settings
from credit_risk.pipeline.evaluate import ks_statistic
from credit_risk.pipeline.fairness import protected_groups
from credit_risk.pipeline.train import CalibratedModel
from credit_risk.pipeline.validation_report.calibration import (
    GradeBounds,
    calibration_by_grade,
    grade_stability,
    quantile_grades,
)
from credit_risk.pipeline.validation_report.importance import model_importance
from credit_risk.pipeline.validation_report.model import (
    PLOT_FILE,
    REPORT_FILE,
    Discrimination,
    Segment,
    SegmentGroup,
    ValidationReport,
)
from credit_risk.spec.dataset import DatasetSpec, Role

log = logging.getLogger(__name__)
# A group with fewer defaults or fewer non-defaults than this is marked `few`: its ROC-AUC
# is shown, but its standard error is large (about 0.05 and more).
MIN_CLASS_ROWS = 20
# A categorical segment shows its largest groups; the rest are one group, "other".
MAX_GROUPS = 12


def discrimination(y: np.ndarray, pd_: np.ndarray) -> Discrimination:
    """ROC-AUC, Gini and KS of a group of rows; None where it lacks a class."""
    y = np.asarray(y, dtype=int)
    n, d = len(y), int(y.sum())
    both = 0 < d < n
    auc = float(roc_auc_score(y, pd_)) if both else None
    return Discrimination(n=n, defaults=d, default_rate=d / n if n else 0.0, roc_auc=auc,
                          gini=None if auc is None else 2 * auc - 1,
                          ks=ks_statistic(y, pd_) if both else None)


def segment_groups(values: pd.Series, numeric: bool, bins: int) -> pd.Series:
    """The group of each row: quantile bins of a number, else the category (the largest
    MAX_GROUPS, the rest "other"); missing values are "unknown"."""
    groups = protected_groups(values, numeric, bins)
    if numeric:
        return groups
    counts = groups.value_counts()
    kept = set(counts.index[:MAX_GROUPS])
    return groups.where(groups.isin(kept), "other")


def segments(X: pd.DataFrame, y: np.ndarray, pd_: np.ndarray, spec: DatasetSpec,
             bins: int) -> list[Segment]:
    """Discrimination per group of the spec's protected columns and its segments."""
    named = [(c, "fairness") for c in spec.protected_columns()]
    named += [(c, "segment") for c in spec.segments if c not in spec.protected_columns()]
    out = []
    y, p = np.asarray(y, dtype=int), np.asarray(pd_, dtype=float)
    for field, kind in named:
        if field not in X.columns:
            continue
        numeric = spec.columns[field].role == Role.NUMERIC
        groups = segment_groups(X[field], numeric, bins)
        rows = []
        for group in _ordered(groups, X[field] if numeric else None):
            mask = (groups == group).to_numpy()
            figures = discrimination(y[mask], p[mask])
            few = min(figures.defaults, figures.n - figures.defaults) < MIN_CLASS_ROWS
            rows.append(SegmentGroup(group=str(group), few=few, **figures.model_dump()))
        out.append(Segment(field=field, kind=kind, groups=rows))
    return out


def _ordered(groups: pd.Series, numbers: pd.Series | None) -> list[str]:
    """The groups by name, or numeric bins from the lowest values up ("unknown" last)."""
    if numbers is None:
        return sorted(groups.unique(), key=str)
    lowest = pd.to_numeric(numbers, errors="coerce").groupby(groups.to_numpy()).min()
    return list(lowest.sort_values(na_position="last").index)


def validation_report(model_name: str, model: CalibratedModel, spec: DatasetSpec,
                      X_train: pd.DataFrame, X_test: pd.DataFrame, y_test: np.ndarray,
                      settings: Settings,
                      grades: Sequence[GradeBounds] | None = None) -> ValidationReport:
    """The report of a fitted model on the test set. `grades`: a master scale (None: PD
    quantiles of the training rows)."""
    vr = settings.validation_report
    test_pd, train_pd = model.predict_pd(X_test), model.predict_pd(X_train)
    if grades is None:
        grades, grades_from = quantile_grades(train_pd, vr.default_grades), (
            f"{vr.default_grades} PD quantiles of the training rows (no master scale)")
    else:
        grades_from = "master scale"
    importance, note = None, None
    try:
        importance = model_importance(model, X_test, y_test, vr.importance_rows,
                                      vr.permutation_repeats, settings.training.seed)
    except ValueError as exc:
        note = str(exc)
        log.warning("validation report: %s", note)
    return ValidationReport(
        model=model_name, test_rows=len(y_test),
        discrimination=discrimination(y_test, test_pd),
        segments=segments(X_test, y_test, test_pd, spec, vr.segment_bins),
        calibration=calibration_by_grade(y_test, test_pd, grades, vr.amber_p, vr.red_p,
                                         grades_from),
        stability=grade_stability(train_pd, test_pd, grades, vr.psi_amber, vr.psi_red),
        importance=importance, **({"importance_note": note} if note else {}))


def report_files(report: ValidationReport) -> dict[str, bytes]:
    """The version's files of a report: the JSON and its figure."""
    from credit_risk.pipeline.validation_report.plot import report_png

    return {REPORT_FILE: report.dumps().encode(), PLOT_FILE: report_png(report)}
