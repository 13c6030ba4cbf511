"""Fairness check: approval rates per group of each protected attribute, and their ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd

from credit_risk.pipeline.run_reports import Fairness, FairnessAttribute, FairnessGroup
from credit_risk.spec.dataset import DatasetSpec, Role


def protected_groups(values: pd.Series, numeric: bool, bins: int = 4) -> pd.Series:
    """Group labels: categories as they are; numbers in quantile bins (e.g. age bands)."""
    if numeric:
        x = pd.to_numeric(values, errors="coerce")
        edges = np.unique(np.nanquantile(x, np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            return pd.Series("all", index=values.index)
        cut = pd.cut(x, edges, include_lowest=True, duplicates="drop")
        return cut.astype(str).where(x.notna(), "unknown")
    return values.astype(object).where(values.notna(), "unknown").astype(str)


def fairness_report(
    X: pd.DataFrame, pd_: np.ndarray, threshold: float, spec: DatasetSpec,
    min_ratio: float, min_group_size: int,
) -> Fairness:
    """Approval (Low risk) rate per group; the lowest/highest rate ratio per attribute."""
    approved = np.asarray(pd_) < threshold
    attributes = {}
    for name in spec.protected_columns():
        if name not in X.columns:
            continue
        groups = protected_groups(X[name], spec.columns[name].role == Role.NUMERIC)
        table = (pd.DataFrame({"group": groups.to_numpy(), "approved": approved})
                 .groupby("group")["approved"].agg(["size", "mean"]))
        rows = [FairnessGroup(group=str(g), n=int(r["size"]), approval_rate=float(r["mean"]),
                              counted=bool(r["size"] >= min_group_size))
                for g, r in table.iterrows()]
        rates = [r.approval_rate for r in rows if r.counted]
        ratio = (min(rates) / max(rates) if max(rates) > 0 else 1.0) if len(rates) >= 2 else None
        attributes[name] = FairnessAttribute(groups=rows, ratio=ratio,
                                             passed=ratio is None or ratio >= min_ratio)
    return Fairness(min_ratio=min_ratio, min_group_size=min_group_size, attributes=attributes,
                    passed=all(a.passed for a in attributes.values()))
