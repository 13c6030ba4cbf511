"""The master scale: rating grades with PD bounds, stored in each model's scoring plan.

A grade holds the PDs from the previous grade's upper bound (the first: from 0) up to, not
including, its own; the last grade's bound is 1 and includes it. A model is graded with the
scale it was trained with (the plan's); a plan published before master scales existed is
graded with the default scale (credit_risk.config.rating).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from credit_risk.config.rating import DEFAULT_MASTER_SCALE, master_scale_problem
from credit_risk.scoring.features import PlanError


@dataclass(frozen=True)
class MasterScale:
    """Grade names, safest first, and each one's upper PD bound (increasing, the last 1)."""

    names: tuple[str, ...]
    upper: tuple[float, ...]

    def __post_init__(self) -> None:
        why = master_scale_problem(self.names, self.upper)
        if why:
            raise PlanError(f"the master scale is not valid: {why}")

    @classmethod
    def of(cls, scale: Mapping[str, float]) -> MasterScale:
        """From a {grade: upper PD bound} mapping (the settings' `master_scale`)."""
        return cls(tuple(scale), tuple(float(v) for v in scale.values()))

    @classmethod
    def default(cls) -> MasterScale:
        return cls.of(DEFAULT_MASTER_SCALE)

    @classmethod
    def from_plan(cls, spec: Any) -> MasterScale:
        """A plan's `master_scale` ({"grades": [{"name", "max_pd"}, ...]}); PlanError when it
        is malformed; the default scale for a plan without one."""
        if spec is None:
            return cls.default()
        try:
            grades = spec["grades"]
            return cls(tuple(g["name"] for g in grades), tuple(g["max_pd"] for g in grades))
        except (KeyError, TypeError) as exc:
            raise PlanError(f"the plan's master scale is malformed ({exc!r}): it needs "
                            '{"grades": [{"name": ..., "max_pd": ...}, ...]}') from exc

    def to_plan(self) -> dict[str, Any]:
        return {"grades": [{"name": n, "max_pd": b}
                           for n, b in zip(self.names, self.upper, strict=True)]}

    def lower(self) -> tuple[float, ...]:
        """Each grade's lower PD bound (inclusive)."""
        return (0.0, *self.upper[:-1])

    def bounds(self, name: str) -> tuple[float, float]:
        """A grade's (lower, upper) PD bounds."""
        i = self.names.index(name)
        return self.lower()[i], self.upper[i]

    def index(self, pd_: Any) -> np.ndarray:
        """The grade number (0: the safest) of each PD."""
        at = np.searchsorted(np.asarray(self.upper), np.asarray(pd_, dtype=float), side="right")
        return np.minimum(at, len(self.names) - 1)

    def grades(self, pd_: Any) -> list[str]:
        """The grade name of each PD."""
        return np.array(self.names, dtype=object)[self.index(pd_)].tolist()

    def grade(self, pd_: float) -> str:
        return self.grades([pd_])[0]
