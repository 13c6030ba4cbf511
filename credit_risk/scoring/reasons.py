"""Reasons: the features pushing an applicant's PD up, in plain words.

Per-row contributions on the model's own scale, relative to a typical applicant:
XGBoost's own `pred_contribs` (by default its fast path-based approximation,
`approx_contribs`, about 15x faster than exact TreeSHAP on a batch, and for a few rows
the same numbers from the trees held in NumPy, 5x faster than a DMatrix round trip;
`exact=True` for TreeSHAP), the linear model's weight x (value - typical value), and
for the random forest the drop in PD when a feature is set to its typical value (occlusion),
for the points scorecard the log-odds (points) a field loses against its best bin.
Everything comes from the pure-data scoring plan (`credit_risk.scoring.plan`).
One-hot columns are summed back into the field they encode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xgboost as xgb

from credit_risk.scoring.plan import ScoringPlan
from credit_risk.scoring.trees import TreeEnsemble
from credit_risk.tables import label_of, singular

SaabasTrees = TreeEnsemble  # the former name: the same contributions as approx_contribs


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
        self.labels = {g: labels.get(g) or label_of(g) for g in self.group_names}
        self._labels_in = {**labels}  # derived features' inputs are named by their labels too
        self._units = {g: units.get(g) or "" for g in self.group_names}
        self.reference = plan.features.row({})[0]  # medians and modes
        self._booster = plan.booster
        self._trees = plan.trees
        self._derived_index = {d: names.index(d) for d, *_ in plan.features.derived}

    def contributions(self, rows: np.ndarray, per_feature: np.ndarray | None = None
                      ) -> np.ndarray:
        """(n_rows, n_groups) contributions; positive raises the PD. `per_feature`: given by
        the plan's walk of the trees for this row (then nothing is computed again)."""
        if per_feature is None or self.exact:
            per_feature = self._per_feature(rows)
        if per_feature is None:
            return self._occlusion(rows)
        return per_feature @ self._to_group

    def _per_feature(self, rows: np.ndarray) -> np.ndarray | None:
        if self.plan.scorecard is not None:  # log-odds lost against each field's best bin
            return self.plan.scorecard.lost(rows)
        if self._trees is not None and not self.exact and len(rows) <= TreeEnsemble.MAX_ROWS:
            return self._trees.contributions(rows)
        if self._booster is not None:
            dm = xgb.DMatrix(rows.astype(np.float32), nthread=1)
            return self._booster.predict(dm, pred_contribs=True,
                                         approx_contribs=not self.exact)[:, :-1]
        if self.plan.linear_w is not None:
            return (rows - self.reference[None, :]) * self.plan.linear_w
        return None  # the forest: occlusion

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

    def explain_texts(self, rows: np.ndarray, values: Mapping[str, Sequence[Any]], top: int,
                      careful: Sequence[int] = ()) -> list[str]:
        """Each row's reasons as `explain` words them, joined by "; ", computed by columns:
        each (feature, value) worded once. `values`: the applications' fields as columns;
        `careful`: rows worded by `explain` itself (e.g. those with an imputed input)."""
        n = len(rows)
        if top <= 0 or n == 0:
            return [""] * n
        contrib = self.contributions(rows)
        order = np.argsort(-contrib, axis=1)[:, :top]
        raises = np.round(np.take_along_axis(contrib, order, axis=1), 4) > 0
        picked_rows = np.asarray(careful, dtype=np.intp)
        raises[picked_rows] = False
        slots = []
        for s in range(order.shape[1]):
            texts = np.full(n, None, dtype=object)
            for k in np.unique(order[raises[:, s], s]).tolist():
                g = self.group_names[k]
                where = np.flatnonzero((order[:, s] == k) & raises[:, s])
                if g in self._derived_index:
                    picked = rows[where, self._derived_index[g]].tolist()
                else:
                    column = values.get(g)
                    picked = [None] * len(where) if column is None else \
                        [column[i] for i in where.tolist()]
                memo: dict[Any, str] = {}
                texts[where] = [memo[v] if v in memo else memo.setdefault(v, self._text(g, v))
                                for v in picked]
            slots.append(texts.tolist())
        out = ["; ".join(t for t in row if t is not None) for row in zip(*slots, strict=True)]
        if len(picked_rows):
            records = [{name: column[i] for name, column in values.items()}
                       for i in picked_rows.tolist()]
            said = self.explain(rows[picked_rows], records, top,
                                contributions=contrib[picked_rows])
            for i, reasons in zip(picked_rows.tolist(), said, strict=True):
                out[i] = "; ".join(r["text"] for r in reasons)
        return out

    def explain(self, rows: np.ndarray, records: Sequence[Mapping[str, Any]], top: int,
                per_feature: np.ndarray | None = None, contributions: np.ndarray | None = None
                ) -> list[list[dict[str, Any]]]:
        """The top features raising each row's PD, most important first (`contributions`:
        the rows' `contributions`, when computed already)."""
        if top <= 0:
            return [[] for _ in records]
        contrib = self.contributions(rows, per_feature) if contributions is None \
            else contributions
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
                absent = self.plan.features.not_given(g, record)
                value = None if absent else derived[g][i] if g in derived else record.get(g)
                reasons.append({"feature": g, "label": labels[g], "value": value,
                                "impact": impact, "text": self._text(g, value, absent)})
            out.append(reasons)
        return out

    def _text(self, group: str, value: Any, absent: Sequence[str] = ()) -> str:
        """`Age (1 year) raises the risk`; a value the applicant did not give (scored as the
        typical one) is `not provided`, never the number that stood in for it."""
        label = self.labels[group]
        if absent:
            inputs = [self._label_of_input(n) for n in absent if n != group]
            said = f"{', '.join(inputs)} not provided" if inputs else "not provided"
            return f"{label} ({said}) raises the risk"
        if value is None:
            return f"{label} raises the risk"
        return f"{label} ({_quantity(value, self._units[group])}) raises the risk"

    def _label_of_input(self, name: str) -> str:
        label = self._labels_in.get(name) or label_of(name)
        return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def _quantity(value: Any, unit: str) -> str:
    """A value with its unit: `95%`, `3% of disposable income`, `1 year`, `2 years`,
    `1,200,000 INR`, `0.42`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    number = f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
    if not unit:
        return number
    if unit.startswith("%"):
        return f"{number}{unit}"
    return f"{number} {singular(unit) if abs(value) == 1 else unit}"
