"""The points scorecard's head in a scoring plan: each field's bin to log-odds, with NumPy only.

The head (``{"kind": "scorecard"}`` in ``plan.json``) holds the regression's intercept and,
per field, its columns in the feature rows, how a value finds its bin and each bin's share of
the log-odds of default (the regression's coefficient x the bin's weight of evidence):

- a numeric field: one column and the bins' ``edges``; a value ``x`` is in bin ``i`` when
  ``edges[i-1] <= x < edges[i]`` (optbinning's rule);
- a categorical field: its one-hot columns, the bin of each (``bins``, -1: none) and the
  log-odds of a row with no column set (``unknown``: a category unseen in training).

The raw PD is ``expit(intercept + sum of the fields' log-odds)``. A field's reason weight is
its log-odds above those of its best bin: the points it loses, in log-odds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from credit_risk.scoring.features import PlanError


def _numbers(what: str, values: Any) -> np.ndarray:
    if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise PlanError(f"the scorecard's {what} is not a list of numbers")
    out = np.array(values, dtype=float)
    if not np.isfinite(out).all():
        raise PlanError(f"the scorecard's {what} holds values that are not finite numbers")
    return out


class _Field:
    """One field's bins, read and checked."""

    def __init__(self, spec: Mapping[str, Any], names: Sequence[str]):
        self.name = str(spec["name"])
        self.columns = np.array(spec["columns"], dtype=np.intp)
        self.log_odds = _numbers(f"log-odds of {self.name}", spec["log_odds"])
        if not len(self.columns) or (self.columns < 0).any() \
                or (self.columns >= len(names)).any():
            raise PlanError(f"the scorecard's field {self.name} reads columns outside the "
                            f"{len(names)} features")
        self.categorical = "bins" in spec
        if self.categorical:
            self.bins = np.array(spec["bins"], dtype=np.intp)
            self.unknown = float(_numbers(f"unknown log-odds of {self.name}",
                                          [spec["unknown"]])[0])
            if self.bins.shape != self.columns.shape \
                    or ((self.bins < -1) | (self.bins >= len(self.log_odds))).any():
                raise PlanError(f"the scorecard's bins of {self.name} do not match its "
                                f"{len(self.columns)} columns and {len(self.log_odds)} bins")
            wrong = [names[j] for j in self.columns if not names[j].startswith(self.name + "=")]
        else:
            self.edges = _numbers(f"edges of {self.name}", spec["edges"])
            if len(self.columns) != 1 or len(self.log_odds) != len(self.edges) + 1:
                raise PlanError(f"the scorecard's numeric field {self.name} needs one column "
                                f"and one more bin than edges")
            if (np.diff(self.edges) <= 0).any():
                raise PlanError(f"the scorecard's edges of {self.name} are not increasing")
            wrong = [names[j] for j in self.columns if names[j] != self.name]
        if wrong:
            raise PlanError(f"the scorecard's field {self.name} reads the features {wrong}")
        self.best = float(self.log_odds.min())  # the bin of the fewest defaults

    def values(self, x: np.ndarray) -> np.ndarray:
        """Each row's log-odds from this field."""
        if not self.categorical:
            return self.log_odds[np.searchsorted(self.edges, x[:, self.columns[0]],
                                                 side="right")]
        block = x[:, self.columns]
        hot = block.argmax(axis=1)
        table = np.append(self.log_odds, self.unknown)  # bin -1: the unknown log-odds
        return np.where(block.max(axis=1) > 0.5, table[self.bins[hot]], self.unknown)


class ScorecardHead:
    """Feature rows to the scorecard's uncalibrated PD, and each field's log-odds lost."""

    def __init__(self, spec: Mapping[str, Any], names: Sequence[str]):
        self.intercept = spec["intercept"]
        if isinstance(self.intercept, bool) or not isinstance(self.intercept, int | float) \
                or not math.isfinite(self.intercept):
            raise PlanError("the scorecard's intercept is not a finite number")
        self.fields = [_Field(f, names) for f in spec["fields"]]
        used = [int(j) for f in self.fields for j in f.columns]
        if len(set(used)) != len(used):
            raise PlanError("the scorecard's fields share feature columns")
        if len({f.name for f in self.fields}) != len(self.fields):
            raise PlanError("the scorecard names a field twice")
        self.width = len(names)

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        """(n, fields) each field's log-odds of default."""
        x = np.asarray(x, dtype=float)
        out = np.empty((len(x), len(self.fields)))
        for k, field in enumerate(self.fields):
            out[:, k] = field.values(x)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._pd(self.log_odds(x))

    def _pd(self, log_odds: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-(log_odds.sum(axis=1) + self.intercept)))

    def lost(self, x: np.ndarray) -> np.ndarray:
        """(n, width) each field's log-odds above its best bin's, in the field's first column
        (its other one-hot columns 0): what summing per field gives back."""
        return self._lost(self.log_odds(x))

    def _lost(self, log_odds: np.ndarray) -> np.ndarray:
        out = np.zeros((len(log_odds), self.width))
        lost = log_odds - np.array([f.best for f in self.fields])
        for k, field in enumerate(self.fields):
            out[:, field.columns[0]] = lost[:, k]
        return out

    def pd_and_lost(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The uncalibrated PDs and `lost`, from one binning of the rows."""
        log_odds = self.log_odds(x)
        return self._pd(log_odds), self._lost(log_odds)
