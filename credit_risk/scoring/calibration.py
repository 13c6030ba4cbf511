"""The calibration map of a scoring plan: the model's raw P(default) in, the PD out.

Three kinds, all pure data evaluated with NumPy: ``sigmoid`` (Platt scaling on the raw PD's
log-odds: a slope and an intercept), ``isotonic`` (a non-decreasing step function, linear
between steps) and ``spline`` (a monotone PCHIP spline fitted in training, stored as its
values on a fine grid and read back by linear interpolation). Every kind keeps the PD within
[pd_floor, 1 - pd_floor]. Training evaluates its calibration with this same code, so the
plan gives the PDs the model was evaluated with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from credit_risk.scoring.features import PlanError

KINDS = ("sigmoid", "isotonic", "spline")
Calibrate = Callable[[np.ndarray], np.ndarray]


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def expit(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _points(kind: str, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A step or spline map's points, checked: x increasing, y non-decreasing inside [0, 1]."""
    xs, ys = arrays[f"{kind}_x"], arrays[f"{kind}_y"]
    if xs.shape != ys.shape or xs.ndim != 1 or not len(xs):
        raise PlanError(f"the {kind} calibration's points do not pair up ({xs.shape} x, "
                        f"{ys.shape} y)")
    if (np.diff(xs) < 0).any():
        raise PlanError(f"the {kind} calibration's x are not in increasing order")
    if (ys < 0).any() or (ys > 1).any():
        raise PlanError(f"the {kind} calibration is not an increasing map into [0, 1]: a "
                        f"PD of {float(ys[(ys < 0) | (ys > 1)][0]):g}")
    falls = np.flatnonzero(np.diff(ys) < 0)
    if len(falls):
        i = int(falls[0])
        raise PlanError(f"the {kind} calibration is not an increasing map into [0, 1]: it "
                        f"falls from {ys[i]:g} to {ys[i + 1]:g} at x = {xs[i + 1]:g}")
    return xs, ys


def _floor(spec: Mapping[str, Any]) -> float:
    floor = spec.get("pd_floor", 0.0)
    if isinstance(floor, bool) or not isinstance(floor, int | float) \
            or not (math.isfinite(floor) and 0 <= floor < 0.5):
        raise PlanError(f"the calibration's PD floor {floor!r} is not a number in [0, 0.5)")
    return float(floor)


def calibration_map(spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Calibrate:
    """The calibration map of a plan's `calibration` and arrays: non-decreasing (a higher
    score never lowers the PD), into [floor, 1 - floor]; PlanError when it is not one."""
    kind, floor = spec["kind"], _floor(spec)
    if kind in ("isotonic", "spline"):
        xs, ys = _points(kind, arrays)
        return lambda raw: np.clip(np.interp(raw, xs, ys), floor, 1 - floor)
    if kind == "sigmoid":
        slope, intercept = float(spec["slope"]), float(spec["intercept"])
        if not (math.isfinite(slope) and math.isfinite(intercept)):
            raise PlanError("the sigmoid calibration's parameters are not finite")
        if slope < 0:
            raise PlanError(f"the sigmoid calibration's slope {slope:g} is negative: a higher "
                            "score would lower the PD")
        return lambda raw: np.clip(expit(logit(raw) * slope + intercept), floor, 1 - floor)
    raise PlanError(f"unknown calibration {kind!r}")
