"""Reasons: the features pushing an applicant's PD up, in plain words.

Per-row contributions on the model's own scale, relative to a typical applicant:
for XGBoost its path-based approximation (`approx_contribs`, Saabas; about 15x faster than
exact TreeSHAP, `exact=True`), for a batch from the path sums held in the leaves of a copy
of the booster (`credit_risk.scoring.pathsums`, one `inplace_predict` that also gives the
margin) and for a few rows from the trees held in NumPy, 5x faster than a DMatrix round trip;
the linear model's weight x (value - typical value); and for the random forest the drop in
PD when a feature is set to its typical value (occlusion); for the points scorecard the
log-odds (points) a field loses against its best bin. Everything comes from the
pure-data scoring plan (`credit_risk.scoring.plan`). One-hot columns are summed back into
the field they encode.

A batch's reasons are ranked with one argsort of its contribution matrix and worded feature
by feature (`credit_risk.scoring.wording`): no Python loop per row but the final dicts, made
in row order (as they are serialised and freed: nearby in memory). One
application (the API's default request) skips that machinery: the same argsort of its row,
then each pick worded directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import xgboost as xgb

from credit_risk.scoring.pathsums import PathSums
from credit_risk.scoring.plan import ScoringPlan, expit
from credit_risk.scoring.trees import TreeEnsemble
from credit_risk.scoring.wording import Column, Wording

log = logging.getLogger(__name__)

OCCLUDED_ROWS = 1024  # a random forest's occlusion: at most this many rows in one call
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
        self.wording = Wording(plan.features, self.group_names, labels, units)
        self.labels = self.wording.labels
        self._names = np.array(self.group_names, dtype=object)
        self._labels = np.array([self.labels[g] for g in self.group_names], dtype=object)
        self._group_type = np.min_scalar_type(len(self.group_names))  # for a radix sort
        self.reference = plan.features.row({})[0]  # medians and modes
        self._booster = plan.booster
        self._trees = plan.trees
        self._derived_index = {d: names.index(d) for d, *_ in plan.features.derived}
        self.path_sums = _path_sums(plan, self._to_group)
        self._group_columns = [[j for j, name in enumerate(self.groups) if name == g]
                               for g in self.group_names]

    def raw_and_contributions(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """A batch's uncalibrated PDs and contributions from one call of the path sums, when
        their margins are the booster's own (else None: the PDs are the plan's to compute)."""
        sums = self.path_sums
        if sums is None or not sums.margin_exact or self.exact \
                or len(rows) <= TreeEnsemble.MAX_ROWS:
            return None
        margin, contributions = sums(rows)
        return expit(margin.astype(np.float64)), contributions

    def contributions(self, rows: np.ndarray, per_feature: np.ndarray | None = None
                      ) -> np.ndarray:
        """(n_rows, n_groups) contributions; positive raises the PD. `per_feature`: given by
        the plan's walk of the trees for this row (then nothing is computed again)."""
        if per_feature is None or self.exact:
            if self.path_sums is not None and not self.exact \
                    and len(rows) > TreeEnsemble.MAX_ROWS:
                return self.path_sums(rows)[1]
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
        """The drop in PD when each feature group is set to its typical value. A few rows
        (up to OCCLUDED_ROWS copies): every copy through the head in one call, not one call
        per group (the head scores a row the same whatever the rows around it)."""
        raw = self.plan.predict_raw
        n, columns = len(rows), self._group_columns
        if n * (len(columns) + 1) <= OCCLUDED_ROWS:
            changed = np.tile(rows, (len(columns) + 1, 1))  # the rows, then a copy per group
            for k, cols in enumerate(columns, start=1):
                changed[k * n:(k + 1) * n, cols] = self.reference[cols]
            pd_ = raw(changed).reshape(len(columns) + 1, n)
            return pd_[0][:, None] - pd_[1:].T
        base = raw(rows)
        out = np.zeros((n, len(columns)))
        for k, cols in enumerate(columns):
            changed = rows.copy()
            changed[:, cols] = self.reference[cols]
            out[:, k] = base - raw(changed)
        return out

    def _picks(self, contrib: np.ndarray, top: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every reason of a batch as (row, feature group, impact), row by row and most
        important first (NumPy's argsort of the whole matrix: its order of ties), stopping at
        the first impact that does not raise the PD; and each row's number of reasons."""
        order = np.argsort(-contrib, axis=1)[:, :top]
        impacts = np.round(np.take_along_axis(contrib, order, axis=1), 4)
        kept = np.logical_and.accumulate(~(impacts <= 0), axis=1)
        rows, slots = np.nonzero(kept)
        return rows, order[rows, slots], impacts[rows, slots], kept.sum(axis=1)

    def _worded(self, rows: np.ndarray, picked: np.ndarray, groups: np.ndarray,
                column: Column) -> Iterator[tuple[int, np.ndarray, list[tuple[Any, str]]]]:
        """The picks (`picked` rows, `groups`) feature group by feature group: each group's
        index, the picks' positions and their (value shown, text); `column(field, rows)`: the
        applications' values of a field, as sent."""
        if not len(groups):
            return
        by_group = np.argsort(groups.astype(self._group_type), kind="stable")
        starts = np.flatnonzero(np.diff(groups[by_group], prepend=-1)).tolist()
        for a, b in zip(starts, [*starts[1:], len(groups)], strict=True):
            at = by_group[a:b]
            who_at = picked[at]
            who = who_at.tolist()
            k = int(groups[at[0]])
            g = self.group_names[k]
            if g in self._derived_index:
                inputs = [column(n, who) for n in self.wording.inputs[g]]
                said = self.wording.derived(g, rows[who_at, self._derived_index[g]].tolist(),
                                            inputs)
            else:
                said = self.wording.given(g, column(g, who))
            yield k, at, said

    def explain_texts(self, rows: np.ndarray, values: Mapping[str, Sequence[Any]], top: int,
                      contributions: np.ndarray | None = None) -> list[str]:
        """Each row's reasons as `explain` words them, joined by "; ", for applications given
        as columns (`values`: {field: values}; `contributions`: when computed already)."""
        n = len(rows)
        if top <= 0 or n == 0:
            return [""] * n

        def column(name: str, at: list[int]) -> list[Any]:
            values_ = values.get(name)
            return [None] * len(at) if values_ is None else [values_[i] for i in at]

        contrib = self.contributions(rows) if contributions is None else contributions
        picked, groups, _, counts = self._picks(contrib, top)
        texts: list[str] = []
        positions = []
        for _, at, said in self._worded(rows, picked, groups, column):
            texts += [t for _, t in said]
            positions.append(at)
        texts = _in_order(texts, positions)
        ends = np.cumsum(counts).tolist()
        return ["; ".join(texts[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    def explain(self, rows: np.ndarray, records: Sequence[Mapping[str, Any]], top: int,
                per_feature: np.ndarray | None = None, contributions: np.ndarray | None = None
                ) -> list[list[dict[str, Any]]]:
        """The top features raising each row's PD, most important first (`contributions`:
        the rows' `contributions`, when computed already). Ranked and worded for the whole
        batch at once, feature group by feature group: only the final dicts one by one."""
        if top <= 0 or not len(records):
            return [[] for _ in records]
        contrib = self.contributions(rows, per_feature) if contributions is None \
            else contributions
        if len(records) == 1:
            return [self._explain_one(rows[0], records[0], top, contrib[0])]

        def column(name: str, at: list[int]) -> list[Any]:
            return [records[i].get(name) for i in at]

        picked, groups, impacts, counts = self._picks(contrib, top)
        said: list[tuple[Any, str]] = []
        positions = []
        for _, at, words in self._worded(rows, picked, groups, column):
            said += words
            positions.append(at)
        # the dicts made in row order, as they are read (serialised) and freed: nearby in memory
        flat = [{"feature": f, "label": lb, "value": v, "impact": m, "text": t}
                for f, lb, (v, t), m in zip(self._names[groups].tolist(),
                                            self._labels[groups].tolist(),
                                            _in_order(said, positions), impacts.tolist(),
                                            strict=True)]
        ends = np.cumsum(counts).tolist()
        return [flat[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    def _explain_one(self, row: np.ndarray, record: Mapping[str, Any], top: int,
                     contrib: np.ndarray) -> list[dict[str, Any]]:
        """`explain` of one application, without the batch's machinery: the same argsort of
        the row (so the same order of ties), rounding and words, each pick worded directly."""
        impacts = np.round(contrib, 4).tolist()
        reasons = []
        for k in np.argsort(-contrib)[:top].tolist():
            impact = impacts[k]
            if impact <= 0:
                break
            g = self.group_names[k]
            if g in self._derived_index:
                shown, text = self.wording.derived_one(
                    g, float(row[self._derived_index[g]]), record)
            else:
                shown, text = self.wording.given_one(g, record.get(g))
            reasons.append({"feature": g, "label": self.labels[g], "value": shown,
                            "impact": impact, "text": text})
        return reasons

    def _text(self, group: str, value: Any, absent: Sequence[str] = ()) -> str:
        return self.wording.text(group, value, absent)


def _in_order(items: list[Any], positions: list[np.ndarray]) -> list[Any]:
    """`items`, listed at `positions` (concatenated), put back in the order of the positions."""
    if len(items) <= 1:
        return items
    back = np.empty(len(items), dtype=np.intp)
    back[np.concatenate(positions)] = np.arange(len(items))
    return list(itemgetter(*back.tolist())(items))


def _path_sums(plan: ScoringPlan, to_group: np.ndarray) -> PathSums | None:
    """The booster's path sums (credit_risk.scoring.pathsums), checked on the plan's sample
    rows; None for other models, or when XGBoost cannot build or match them (then its own
    approx_contribs serve)."""
    if plan.booster is None or plan.trees is None or not plan.trees.simple:
        return None
    iterations = plan.iteration_range
    try:
        sums = PathSums(plan.booster, to_group, iterations)
        sums.check(plan.booster, plan.trees, to_group, plan.sample_rows(), iterations)
    except (ValueError, KeyError, TypeError, IndexError, xgb.core.XGBoostError) as exc:
        log.warning("reasons: XGBoost's approx_contribs, not path sums (%s)", exc)
        return None
    return sums
