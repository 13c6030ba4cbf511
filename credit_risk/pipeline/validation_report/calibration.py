"""Calibration per grade with a binomial and a Jeffreys test, and the grades' stability.

Grades are a list of `GradeBounds` (name, PD lower, PD upper; a PD in [lower, upper), the
last grade's upper bound included): a master scale's, or by default `quantile_grades` of the
training rows' PDs. Both tests are one-sided against a PD that is too low, as supervisors ask
of PD back-testing (the ECB's instructions for reporting the validation of IRB models use the
Jeffreys test). The traffic light of a test: red when p < red_p, amber when p < amber_p, else
green; of the PSI: green below psi_amber, amber below psi_red, else red.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import beta, binomtest

from credit_risk.pipeline.monitoring import psi_categorical
from credit_risk.pipeline.validation_report.model import (
    Calibration,
    GradeShare,
    GradeTest,
    Light,
    Stability,
)
from credit_risk.scoring.grades import MasterScale

OUTSIDE = "outside the scale"


class GradeBounds(NamedTuple):
    """A rating grade: PDs in [lower, upper); `pd` its own PD (a master scale's), if it has one
    (else the tests use the mean PD of its rows)."""

    name: str
    lower: float
    upper: float
    pd: float | None = None


def check_grades(grades: Sequence[GradeBounds]) -> list[GradeBounds]:
    """The grades by PD, or ValueError naming the first bad one (empty, overlapping)."""
    ordered = sorted(grades, key=lambda g: g.lower)
    if not ordered:
        raise ValueError("no grades")
    for prev, g in zip([None, *ordered], ordered, strict=False):
        if not 0 <= g.lower < g.upper <= 1:
            raise ValueError(f"grade {g.name!r}: needs 0 <= lower < upper <= 1, "
                             f"got [{g.lower}, {g.upper})")
        if prev is not None and g.lower < prev.upper:
            raise ValueError(f"grade {g.name!r} overlaps grade {prev.name!r}")
    if len({g.name for g in ordered}) < len(ordered):
        raise ValueError("two grades share a name")
    return ordered


def quantile_grades(train_pd: np.ndarray, count: int) -> list[GradeBounds]:
    """Up to `count` grades at the PD quantiles of the training rows, covering [0, 1]: "Q1"
    holds the lowest PDs. Each edge is a PD of a training row; tied quantiles (the steps of an
    isotonic calibration) merge into one grade."""
    p = np.asarray(train_pd, dtype=float)
    inner = np.quantile(p, np.linspace(0, 1, count + 1)[1:-1], method="inverted_cdf")
    edges = [0.0, *[float(e) for e in np.unique(inner) if p.min() < e < 1], 1.0]
    return [GradeBounds(f"Q{i + 1}", lo, hi) for i, (lo, hi) in enumerate(zip(edges[:-1],
                                                                              edges[1:],
                                                                              strict=True))]


def assign(pd_: np.ndarray, grades: Sequence[GradeBounds]) -> np.ndarray:
    """Each PD's position in `grades` (checked, ordered), -1 when it is in none."""
    p = np.asarray(pd_, dtype=float)
    lowers = np.array([g.lower for g in grades])
    uppers = np.array([g.upper for g in grades])
    idx = np.searchsorted(lowers, p, side="right") - 1
    safe = np.clip(idx, 0, len(grades) - 1)
    last = safe == len(grades) - 1
    inside = (idx >= 0) & ((p < uppers[safe]) | (last & (p <= uppers[safe])))
    return np.where(inside, idx, -1)


def light_of_p(p: float, amber_p: float, red_p: float) -> Light:
    return "red" if p < red_p else "amber" if p < amber_p else "green"


def grade_test(name: str, y: np.ndarray, pd_: np.ndarray, amber_p: float, red_p: float,
               pd_value: float | None = None, bounds: tuple[float, float] | None = None
               ) -> GradeTest:
    """The binomial and Jeffreys tests of one grade's rows against its PD (`pd_value`, else
    the mean PD of the rows)."""
    y = np.asarray(y, dtype=int)
    n, d = len(y), int(y.sum())
    lower, upper = bounds if bounds is not None else (None, None)
    if n == 0:
        return GradeTest(grade=name, pd_lower=lower, pd_upper=upper, n=0, defaults=0,
                         observed_rate=None, pd=pd_value, binomial_p=None, jeffreys_p=None,
                         interval=None, light=None)
    q = float(np.mean(pd_)) if pd_value is None else float(pd_value)
    binomial = float(binomtest(d, n, q, alternative="greater").pvalue)
    posterior = beta(d + 0.5, n - d + 0.5)
    jeffreys = float(posterior.cdf(q))
    # The Jeffreys interval with the usual ends: 0 with no default, 1 with no non-default.
    low = 0.0 if d == 0 else float(posterior.ppf(0.025))
    high = 1.0 if d == n else float(posterior.ppf(0.975))
    return GradeTest(grade=name, pd_lower=lower, pd_upper=upper, n=n, defaults=d,
                     observed_rate=d / n, pd=q, binomial_p=binomial, jeffreys_p=jeffreys,
                     interval=(low, high), light=light_of_p(jeffreys, amber_p, red_p))


def calibration_by_grade(y: np.ndarray, pd_: np.ndarray, grades: Sequence[GradeBounds],
                         amber_p: float, red_p: float, grades_from: str) -> Calibration:
    """Every grade's tests on the test rows, and the tests of all rows together."""
    grades = check_grades(grades)
    y, p = np.asarray(y, dtype=int), np.asarray(pd_, dtype=float)
    idx = assign(p, grades)
    rows = [grade_test(g.name, y[idx == i], p[idx == i], amber_p, red_p, g.pd,
                       (g.lower, g.upper)) for i, g in enumerate(grades)]
    return Calibration(grades_from=grades_from, amber_p=amber_p, red_p=red_p, grades=rows,
                       portfolio=grade_test("all", y, p, amber_p, red_p),
                       outside_scale=int((idx < 0).sum()))


def grade_stability(train_pd: np.ndarray, test_pd: np.ndarray, grades: Sequence[GradeBounds],
                    psi_amber: float, psi_red: float) -> Stability:
    """The PSI of the test rows' grades against the training rows' grades."""
    grades = check_grades(grades)
    names = np.array([g.name for g in grades] + [OUTSIDE], dtype=object)
    train = pd.Series(names[assign(train_pd, grades)])  # -1 picks OUTSIDE
    test = pd.Series(names[assign(test_pd, grades)])
    psi = psi_categorical(train, test)
    shares = [GradeShare(grade=str(name), train_share=float((train == name).mean()),
                         test_share=float((test == name).mean()))
              for name in names if name != OUTSIDE or (train == name).any() or
              (test == name).any()]
    light: Light = "green" if psi < psi_amber else "amber" if psi < psi_red else "red"
    return Stability(psi=psi, psi_amber=psi_amber, psi_red=psi_red, light=light, shares=shares,
                     train_rows=len(train), test_rows=len(test))


def master_scale_grades(scale: MasterScale) -> list[GradeBounds]:
    """The grades of a model's master scale, as the report tests them."""
    return [GradeBounds(name, lower, upper)
            for name, lower, upper in zip(scale.names, scale.lower(), scale.upper, strict=True)]
