"""The PD calibration of a candidate: sigmoid, isotonic or a monotone spline, chosen by
cross-validated log loss on the chosen trial's out-of-fold raw PDs.

- ``sigmoid``: Platt scaling, a logistic regression on the raw PD's log-odds.
- ``isotonic``: scikit-learn's isotonic regression, then every step holding more than
  `isotonic_max_step_share` of the rows split at distinct raw PDs into smaller steps, tilted
  around the step's PD so that their row-weighted mean stays the step's PD and they stay
  strictly between the neighbouring steps: PDs fine enough to price on. A step of rows sharing
  one raw PD cannot be split, nor a step at the PD floor (the floor is a policy, not an
  estimate).
- ``spline``: a monotone PCHIP spline (scipy) through the isotonic steps' centres (mean
  log-odds of the raw PD, the step's PD; centred isotonic regression), in log-odds; stored as
  its values on a fine grid, so the plan needs no scipy.

Each is compiled at once into the plan's pure data (credit_risk.scoring.calibration) and
evaluated by that same code, here and in serving. Every PD lies in [floor, 1 - floor].
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from credit_risk.config import Settings
from credit_risk.scoring.calibration import KINDS, calibration_map, expit, logit

log = logging.getLogger(__name__)

SPLINE_GRID = 512  # points of the spline's piecewise-linear image in the plan
TILT = 0.45  # a split step's sub-steps spread over this share of the gap to each neighbour
Plan = tuple[dict[str, Any], dict[str, np.ndarray]]


@dataclass
class Calibration:
    """A fitted calibration as plan data (plan.json's `calibration` and its arrays), with the
    cross-validated log loss of every method tried."""

    spec: dict[str, Any]
    arrays: dict[str, np.ndarray]
    cv_log_loss: dict[str, float] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.spec["kind"])

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """PDs of raw PDs, as the scoring plan computes them."""
        return np.asarray(calibration_map(self.spec, self.arrays)(np.asarray(raw, float)),
                          dtype=float)

    def summary(self) -> dict[str, Any]:
        """The method, the floor and the CV log losses (the manifest's `calibration`)."""
        return {"method": self.method, "pd_floor": self.spec["pd_floor"],
                "cv_log_loss": dict(self.cv_log_loss)}


def fit_sigmoid(raw: np.ndarray, y: np.ndarray, floor: float, max_share: float = 1.0) -> Plan:
    platt = LogisticRegression().fit(logit(raw).reshape(-1, 1), y)
    sign = 1.0 if platt.classes_[1] == 1 else -1.0
    return {"kind": "sigmoid", "slope": sign * float(platt.coef_[0, 0]),
            "intercept": sign * float(platt.intercept_[0]), "pd_floor": floor}, {}


def _steps(raw: np.ndarray, y: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Rows sorted by raw PD, their isotonic PDs and each row's step number."""
    order = np.argsort(raw, kind="stable")
    xs = np.asarray(raw, float)[order]
    iso = IsotonicRegression(y_min=floor, y_max=1 - floor, out_of_bounds="clip")
    fitted = iso.fit(xs, np.asarray(y, float)[order]).predict(xs)
    step = np.concatenate([[0], np.cumsum(np.diff(fitted) != 0)])
    return xs, fitted, step


def _split(xs: np.ndarray, lo: int, hi: int, cap: int) -> list[int]:
    """Cut positions splitting rows lo..hi-1 into parts of at most `cap` rows where the raw PDs
    allow (never between equal raw PDs)."""
    cuts, start = [], lo
    while hi - start > cap:
        at = start + cap
        while at > start and xs[at] == xs[at - 1]:  # back to a change of raw PD
            at -= 1
        if at == start:  # one raw PD holds more than `cap` rows: past them
            at = start + cap
            while at < hi and xs[at] == xs[at - 1]:
                at += 1
        if at >= hi:
            break
        cuts.append(at)
        start = at
    return cuts


def _capped(xs: np.ndarray, fitted: np.ndarray, step: np.ndarray, floor: float,
            max_share: float) -> np.ndarray:
    """The isotonic PDs with every step over `max_share` of the rows split and tilted."""
    cap = max(1, math.floor(max_share * len(xs)))
    out = fitted.copy()
    starts = np.flatnonzero(np.concatenate([[True], np.diff(step) != 0]))
    ends = np.append(starts[1:], len(xs))
    values = fitted[starts]
    for k, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        cuts = _split(xs, int(lo), int(hi), cap)
        v = values[k]
        below = values[k - 1] if k else floor
        above = values[k + 1] if k + 1 < len(values) else 1 - floor
        gap = TILT * min(v - below, above - v)
        if not cuts or gap <= 0:
            continue
        bounds = [int(lo), *cuts, int(hi)]
        centre = np.array([(a + b - 1) / 2 for a, b in zip(bounds, bounds[1:], strict=False)])
        sizes = np.diff(bounds)
        dev = centre - np.average(centre, weights=sizes)  # row-weighted mean 0: mean PD kept
        dev /= np.abs(dev).max()
        out[lo:hi] = np.repeat(v + gap * dev, sizes)
    return out


def _points(xs: np.ndarray, pds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The step function's points: the first and last raw PD of each run of equal PDs."""
    new = np.concatenate([[True], pds[1:] != pds[:-1]])
    last = np.concatenate([pds[1:] != pds[:-1], [True]])
    keep = new | last
    px, py = xs[keep], pds[keep]
    unique = np.concatenate([[True], np.diff(px) > 0])  # one raw PD, one point
    return px[unique], py[unique]


def fit_isotonic(raw: np.ndarray, y: np.ndarray, floor: float, max_share: float = 1.0) -> Plan:
    xs, fitted, step = _steps(raw, y, floor)
    px, py = _points(xs, _capped(xs, fitted, step, floor, max_share))
    return {"kind": "isotonic", "pd_floor": floor}, {"isotonic_x": px, "isotonic_y": py}


def fit_spline(raw: np.ndarray, y: np.ndarray, floor: float, max_share: float = 1.0) -> Plan:
    xs, fitted, step = _steps(raw, y, floor)
    z = logit(xs)
    counts = np.bincount(step)
    knot_z = np.bincount(step, weights=z) / counts
    knot_y = np.bincount(step, weights=fitted) / counts
    if len(knot_z) < 2:  # one step: a constant
        return {"kind": "spline", "pd_floor": floor}, {"spline_x": np.array([0.0, 1.0]),
                                                       "spline_y": np.repeat(knot_y[0], 2)}
    grid = np.linspace(knot_z[0], knot_z[-1], SPLINE_GRID)
    values = np.clip(PchipInterpolator(knot_z, knot_y)(grid), floor, 1 - floor)
    gx = expit(grid)
    keep = np.concatenate([[True], np.diff(gx) > 0])
    return {"kind": "spline", "pd_floor": floor}, {
        "spline_x": gx[keep], "spline_y": np.maximum.accumulate(values[keep])}


FITTERS: dict[str, Callable[..., Plan]] = {
    "sigmoid": fit_sigmoid, "isotonic": fit_isotonic, "spline": fit_spline}


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def cv_log_losses(raw: np.ndarray, y: np.ndarray, floor: float, max_share: float, folds: int,
                  seed: int) -> dict[str, float]:
    """Each method's log loss on held-out folds of (raw, y), pooled; empty when a class has
    fewer rows than two folds need."""
    folds = min(folds, int(min(y.sum(), len(y) - y.sum())))
    if folds < 2:
        return {}
    held = {m: np.zeros(len(y)) for m in KINDS}
    for fit, val in StratifiedKFold(folds, shuffle=True, random_state=seed).split(raw, y):
        for method in KINDS:
            spec, arrays = FITTERS[method](raw[fit], y[fit], floor, max_share)
            held[method][val] = calibration_map(spec, arrays)(raw[val])
    return {m: log_loss(y, held[m]) for m in KINDS}


def fit_calibration(raw: np.ndarray, y: np.ndarray, settings: Settings) -> Calibration:
    """The configured calibration of out-of-fold raw PDs; with `calibration=auto`, the method
    of lowest cross-validated log loss (ties: the simpler, in the order sigmoid, spline,
    isotonic), refitted on every row."""
    pd_, training = settings.pd, settings.training
    raw, y = np.asarray(raw, float), np.asarray(y, int)
    losses = cv_log_losses(raw, y, pd_.floor, pd_.isotonic_max_step_share, training.cv_folds,
                           training.seed)
    method: str = pd_.calibration
    if method == "auto":
        order = ("sigmoid", "spline", "isotonic")
        method = min(order, key=lambda m: (losses[m], order.index(m))) if losses else "sigmoid"
    log.info("calibration %s; cross-validated log loss %s", method,
             ", ".join(f"{m} {v:.5f}" for m, v in losses.items()) or "not measured (too few "
             "defaults)")
    spec, arrays = FITTERS[method](raw, y, pd_.floor, pd_.isotonic_max_step_share)
    return Calibration(spec, arrays, losses)
