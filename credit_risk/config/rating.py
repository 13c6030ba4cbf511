"""Settings of the PDs a bank can price on: the calibration, the PD floor and the master scale.

The master scale maps a PD to a rating grade: each grade holds the PDs from the previous
grade's upper bound (the first: from 0) up to, not including, its own; the last grade's bound
is 1 and includes it. The default is a geometric scale of 17 grades from the 0.03% floor to
100% (each bound about 1.6 x the one before, rounded to two significant figures), as banks'
internal master scales are: grade "1" the safest, "17" the riskiest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from credit_risk.config.base import Group, env

CALIBRATIONS = ("sigmoid", "isotonic", "spline")

# grade: its upper PD bound (exclusive; the last one, 1, inclusive)
DEFAULT_MASTER_SCALE: dict[str, float] = {
    "1": 0.00048, "2": 0.00078, "3": 0.0013, "4": 0.002, "5": 0.0033, "6": 0.0052,
    "7": 0.0084, "8": 0.014, "9": 0.022, "10": 0.035, "11": 0.057, "12": 0.091, "13": 0.15,
    "14": 0.24, "15": 0.38, "16": 0.61, "17": 1.0,
}
MAX_GRADES = 50
MAX_GRADE_NAME = 20


def master_scale_problem(names: Sequence[object], bounds: Sequence[object]) -> str | None:
    """Why (names, upper bounds) is not a master scale: every PD in [0, 1] in one grade; None
    when it is. (A grade wholly below the PD floor is allowed; no PD gets it.)"""
    if not 2 <= len(names) <= MAX_GRADES or len(names) != len(bounds):
        return f"a master scale needs 2 to {MAX_GRADES} grades, each with one upper PD bound"
    for name in names:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_GRADE_NAME:
            return (f"grade name {name!r} is not a non-blank text of at most {MAX_GRADE_NAME} "
                    "characters")
    if len(set(names)) != len(names):
        return "grade names are not unique"
    for name, bound in zip(names, bounds, strict=True):
        if isinstance(bound, bool) or not isinstance(bound, int | float) \
                or not math.isfinite(bound) or not 0 < bound <= 1:
            return f"grade {name}'s upper PD bound {bound!r} is not a number in (0, 1]"
    numbers = [float(b) for b in bounds]  # type: ignore[arg-type]
    for i in range(1, len(numbers)):
        if numbers[i] <= numbers[i - 1]:
            return (f"upper PD bounds do not increase: grade {names[i]} ({numbers[i]:g}) after "
                    f"{names[i - 1]} ({numbers[i - 1]:g})")
    if numbers[-1] != 1.0:
        return (f"the last grade's upper PD bound is {numbers[-1]:g}, not 1: every PD up to 1 "
                "needs a grade")
    return None


class PDSettings(Group):
    title: ClassVar[str] = "PD calibration and master scale"
    calibration: Literal["auto", "sigmoid", "isotonic", "spline"] = Field(
        "auto", alias=env("calibration"),
        description="Calibration of the PDs on the out-of-fold predictions: auto chooses "
                    "sigmoid (Platt), isotonic or spline (monotone PCHIP) by cross-validated "
                    "log loss; or one of them.")
    floor: float = Field(0.0003, ge=0, lt=0.5, alias=env("pd_floor"),
                         description="No PD below this nor above 1 minus it (0.03%, the Basel "
                                     "floor), whatever the calibration.")
    isotonic_max_step_share: float = Field(
        0.05, gt=0, le=1, alias=env("isotonic_max_step_share"),
        description="The isotonic calibration splits a step holding more than this share of "
                    "the calibration rows into smaller ones (1: off).")
    master_scale: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MASTER_SCALE), alias=env("master_scale"),
        description="Rating grades and each one's upper PD bound (JSON object, safest grade "
                    "first, bounds increasing to 1); a grade holds the PDs from the previous "
                    "bound up to its own. Stored with each model.")

    @field_validator("master_scale")
    @classmethod
    def _valid_scale(cls, scale: dict[str, float]) -> dict[str, float]:
        why = master_scale_problem(list(scale), list(scale.values()))
        if why:
            raise ValueError(why)
        return scale
