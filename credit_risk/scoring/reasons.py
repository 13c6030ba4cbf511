"""Reasons: the features pushing an applicant's PD up, in plain words.

Per-row contributions on the model's own scale, relative to a typical applicant:
XGBoost's own `pred_contribs` (by default its fast path-based approximation,
`approx_contribs`, about 15x faster than exact TreeSHAP on a batch, and for a few rows
the same numbers from the trees held in NumPy, 5x faster than a DMatrix round trip;
`exact=True` for TreeSHAP), the linear model's weight x (value - typical value), and
for the random forest the drop in PD when a feature is set to its typical value (occlusion).
Everything comes from the pure-data scoring plan (`credit_risk.scoring.plan`).
One-hot columns are summed back into the field they encode.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xgboost as xgb

from credit_risk.scoring.plan import ScoringPlan


class SaabasTrees:
    """XGBoost's `approx_contribs` for a few rows, without building a DMatrix per request.

    The trees are read once from the booster's JSON model: along each row's path, every
    split adds (mean value of the child - mean value of the node) to its feature, the node
    means weighted by cover (hessian sums), exactly as XGBoost does. Tested equal to
    `Booster.predict(..., pred_contribs=True, approx_contribs=True)`.
    """

    MAX_ROWS = 16  # above this XGBoost's own batch code is faster

    def __init__(self, booster: xgb.Booster):
        trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"][
            "trees"]
        width = max(len(t["left_children"]) for t in trees)
        shape = (len(trees), width)
        self.left = np.zeros(shape, dtype=np.int64)
        self.right = np.zeros(shape, dtype=np.int64)
        self.missing = np.zeros(shape, dtype=np.int64)
        self.feature = np.zeros(shape, dtype=np.int64)
        self.threshold = np.zeros(shape, dtype=np.float32)
        self.leaf = np.ones(shape, dtype=bool)
        self.mean = np.zeros(shape, dtype=np.float64)
        self.depth = 0
        for t, tree in enumerate(trees):
            left, right = np.asarray(tree["left_children"]), np.asarray(tree["right_children"])
            n = len(left)
            is_leaf = left == -1
            self.leaf[t, :n] = is_leaf
            self.left[t, :n] = np.where(is_leaf, np.arange(n), left)
            self.right[t, :n] = np.where(is_leaf, np.arange(n), right)
            default_left = np.asarray(tree["default_left"], dtype=bool)
            self.missing[t, :n] = np.where(default_left, self.left[t, :n], self.right[t, :n])
            self.feature[t, :n] = tree["split_indices"]
            self.threshold[t, :n] = np.asarray(tree["split_conditions"], dtype=np.float32)
            self.mean[t, :n] = _node_means(left, right, np.asarray(tree["split_conditions"]),
                                           np.asarray(tree["sum_hessian"]))
            self.depth = max(self.depth, _depth(left, right))
        self.n_features = int(booster.num_features())
        self._trees = np.arange(len(trees))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """(n_rows, n_features) contributions in margin (log-odds) units, without the bias."""
        x = rows.astype(np.float32)
        out = np.zeros((len(x), self.n_features))
        t = self._trees
        for i, row in enumerate(x):
            node = np.zeros(len(t), dtype=np.int64)
            for _ in range(self.depth):
                f = self.feature[t, node]
                v = row[f]
                nxt = np.where(np.isnan(v), self.missing[t, node],
                               np.where(v < self.threshold[t, node], self.left[t, node],
                                        self.right[t, node]))
                delta = self.mean[t, nxt] - self.mean[t, node]  # 0 once at a leaf
                out[i] += np.bincount(f, weights=delta, minlength=self.n_features)
                node = nxt
        return out


def _node_means(left: np.ndarray, right: np.ndarray, value: np.ndarray,
                cover: np.ndarray) -> np.ndarray:
    """Cover-weighted mean leaf value under each node (children have higher ids)."""
    mean = value.astype(np.float64).copy()
    for node in range(len(left) - 1, -1, -1):
        if left[node] != -1:
            lo, hi = left[node], right[node]
            mean[node] = (cover[lo] * mean[lo] + cover[hi] * mean[hi]) / cover[node]
    return mean


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth, frontier = 0, [0]
    while any(left[n] != -1 for n in frontier):
        frontier = [c for n in frontier if left[n] != -1 for c in (left[n], right[n])]
        depth += 1
    return depth


class ReasonExplainer:
    """Built once per model version; explains rows of the model's feature matrix."""

    def __init__(self, plan: ScoringPlan, labels: Mapping[str, str],
                 units: Mapping[str, str | None], exact: bool = False):
        self.plan = plan
        self.exact = exact
        names = plan.features.names
        self.groups = [n.split("=", 1)[0] for n in names]
        self.group_names = list(dict.fromkeys(self.groups))
        index = {g: i for i, g in enumerate(self.group_names)}
        self._to_group = np.zeros((len(names), len(self.group_names)))
        for j, g in enumerate(self.groups):
            self._to_group[j, index[g]] = 1.0
        self.labels = {g: labels.get(g, g.replace("_", " ").capitalize()) for g in self.group_names}
        self._suffix = {g: "%" if units.get(g) == "%" else f" {units[g]}" if units.get(g) else ""
                        for g in self.group_names}
        self.reference = plan.features.row({})[0]  # medians and modes
        self._booster = plan.booster
        self._saabas = SaabasTrees(self._booster) if self._booster is not None else None
        self._derived_index = {d: names.index(d) for d, *_ in plan.features.derived}

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """(n_rows, n_groups) contributions; positive raises the PD."""
        if self._saabas is not None and not self.exact and len(rows) <= SaabasTrees.MAX_ROWS:
            per_feature = self._saabas.contributions(rows)
        elif self._booster is not None:
            dm = xgb.DMatrix(rows.astype(np.float32), nthread=1)
            per_feature = self._booster.predict(dm, pred_contribs=True,
                                                approx_contribs=not self.exact)[:, :-1]
        elif self.plan.linear_w is not None:
            per_feature = (rows - self.reference[None, :]) * self.plan.linear_w
        else:
            return self._occlusion(rows)
        return per_feature @ self._to_group

    def _occlusion(self, rows: np.ndarray) -> np.ndarray:
        raw = self.plan.predict_raw
        base = raw(rows)
        out = np.zeros((len(rows), len(self.group_names)))
        for k, g in enumerate(self.group_names):
            cols = [j for j, name in enumerate(self.groups) if name == g]
            changed = rows.copy()
            changed[:, cols] = self.reference[cols]
            out[:, k] = base - raw(changed)
        return out

    def explain(self, rows: np.ndarray, records: Sequence[Mapping[str, Any]],
                top: int) -> list[list[dict[str, Any]]]:
        """The top features raising each row's PD, most important first."""
        if top <= 0:
            return [[] for _ in records]
        contrib = self.contributions(rows)
        order = np.argsort(-contrib, axis=1)[:, :top]
        impacts = np.round(np.take_along_axis(contrib, order, axis=1), 4).tolist()
        derived = {g: rows[:, j].tolist() for g, j in self._derived_index.items()}
        groups, labels = self.group_names, self.labels
        out = []
        for i, (record, ks) in enumerate(zip(records, order.tolist(), strict=True)):
            reasons = []
            for k, impact in zip(ks, impacts[i], strict=True):
                if impact <= 0:
                    break
                g = groups[k]
                value = derived[g][i] if g in derived else record.get(g)
                reasons.append({"feature": g, "label": labels[g], "value": value,
                                "impact": impact, "text": self._text(g, value)})
            out.append(reasons)
        return out

    def _text(self, group: str, value: Any) -> str:
        label = self.labels[group]
        if value is None:
            return f"{label} raises the risk"
        if isinstance(value, bool) or not isinstance(value, int | float):
            shown = str(value)
        elif float(value).is_integer():
            shown = f"{int(value):,}"
        else:
            shown = f"{value:,.2f}"
        return f"{label} ({shown}{self._suffix[group]}) raises the risk"
