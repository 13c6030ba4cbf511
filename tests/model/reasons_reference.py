"""The reasons as credit-risk worded them row by row before they were vectorised (frozen copy
of `ReasonExplainer.explain` and its helpers, 2026-12): the parity tests hold today's batch
wording to it, text for text, value for value and in the same order (ties included). And the
tree walk node by node (frozen copy of `TreeEnsemble.walk`, 2026-12), for the walk by edges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from credit_risk.tables import label_of, singular


def reference_explain(explainer: Any, rows: np.ndarray, records: Sequence[Mapping[str, Any]],
                      top: int, contrib: np.ndarray) -> list[list[dict[str, Any]]]:
    """The top features raising each row's PD, most important first, one row at a time."""
    if top <= 0:
        return [[] for _ in records]
    order = np.argsort(-contrib, axis=1)[:, :top]
    impacts = np.round(np.take_along_axis(contrib, order, axis=1), 4).tolist()
    features = explainer.plan.features
    names = features.names
    derived_index = {d: names.index(d) for d, *_ in features.derived}
    derived = {g: rows[:, j].tolist() for g, j in derived_index.items()}
    groups, labels = explainer.group_names, explainer.labels
    out = []
    for i, (record, ks) in enumerate(zip(records, order.tolist(), strict=True)):
        reasons = []
        for k, impact in zip(ks, impacts[i], strict=True):
            if impact <= 0:
                break
            g = groups[k]
            absent = _not_given(features, g, record)
            value = None if absent else derived[g][i] if g in derived else record.get(g)
            reasons.append({"feature": g, "label": labels[g], "value": value,
                            "impact": impact, "text": _text(explainer, g, value, absent)})
        out.append(reasons)
    return out


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _not_given(features: Any, name: str, record: Mapping[str, Any]) -> list[str]:
    out = []
    for n in features.derived_inputs.get(name, (name,)):
        v = record.get(n)
        if _is_missing(v) or (v if isinstance(v, int | float) and not isinstance(v, bool)
                              else str(v).strip()) in features._missing_of.get(n, ()):
            out.append(n)
    return out


def _text(explainer: Any, group: str, value: Any, absent: Sequence[str] = ()) -> str:
    label = explainer.labels[group]
    if absent:
        inputs = [_label_of_input(explainer, n) for n in absent if n != group]
        said = f"{', '.join(inputs)} not provided" if inputs else "not provided"
        return f"{label} ({said}) raises the risk"
    if value is None:
        return f"{label} raises the risk"
    return f"{label} ({_quantity(value, explainer.wording.units[group])}) raises the risk"


def _label_of_input(explainer: Any, name: str) -> str:
    label = explainer.wording._labels_in.get(name) or label_of(name)
    return label if label[1:2].isupper() else label[:1].lower() + label[1:]


def _quantity(value: Any, unit: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    number = f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
    if not unit:
        return number
    if unit.startswith("%"):
        return f"{number}{unit}"
    return f"{number} {singular(unit) if abs(value) == 1 else unit}"


def reference_walk(trees: Any, row: np.ndarray) -> tuple[float, np.ndarray]:
    """`TreeEnsemble.walk` node by node, as it was before it walked by edges: one row's margin
    (float32, summed in tree order) and per-feature contributions (no bias)."""
    x = np.asarray(row, dtype=np.float32)
    node = trees.roots
    features, deltas = [], []
    nan = bool(np.isnan(x).any())
    for _ in range(trees.depth):
        f = trees.feature[node]
        v = x[f]
        nxt = np.where(v < trees.threshold[node], trees.left[node], trees.right[node])
        if nan:
            nxt = np.where(np.isnan(v), trees.missing[node], nxt)
        features.append(f)
        deltas.append(trees.mean[nxt] - trees.mean[node])
        node = nxt
    leaves = np.concatenate(([trees.base_margin], trees.value[node]))
    margin = float(np.add.accumulate(leaves, dtype=np.float32)[-1])
    contributions = np.bincount(np.concatenate(features), weights=np.concatenate(deltas),
                                minlength=trees.n_features) if features else \
        np.zeros(trees.n_features)
    return margin, contributions
