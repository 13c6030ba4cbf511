"""The points scorecard compiled: its plan head, its points table, its CSV and model card part.

The plan head's log-odds come from the fitted binning's own ``transform`` (one row per bin
pushed through it), times the regression's coefficient, so the plan bins as optbinning does.
Points are on the score scale the API shows: with the sigmoid calibration (slope s,
intercept t) and the settings' scaling (offset, factor = PDO / ln 2), a row's score is
``offset - factor x (s x (intercept + sum of its log-odds) + t)``; each bin gets
``-factor x s x its log-odds`` plus an equal share of the rest, so a row's points add up to
its score (before rounding and the 300-900 clip).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from credit_risk.config.scorecard import ScorecardSettings
from credit_risk.pipeline.model_card import _table
from credit_risk.pipeline.scorecard import ScorecardBinning, field_strengths
from credit_risk.pipeline.train import CalibratedModel
from credit_risk.scoring.plan import PlanError
from credit_risk.scoring.scorer import ScoreScaling

CSV_FILE = "scorecard.csv"
COLUMNS = ("field", "bin", "lower", "upper", "points", "count", "event_rate", "woe", "iv",
           "field_iv")
UNSEEN = "(any other category)"


def is_scorecard(model: CalibratedModel) -> bool:
    return "binning" in model.pipeline.named_steps


def _parts(model: CalibratedModel) -> tuple[ScorecardBinning, np.ndarray, float]:
    """The binning, and the regression's coefficients and intercept for P(default)."""
    binning = model.pipeline.named_steps["binning"]
    est = model.pipeline.steps[-1][1]
    if not isinstance(est, LogisticRegression) or est.coef_.shape[0] != 1:
        raise PlanError(f"cannot compile a scorecard ending in a {type(est).__name__}")
    sign = 1.0 if int(np.flatnonzero(np.asarray(est.classes_) == 1)[0]) == 1 else -1.0
    return binning, sign * est.coef_[0], sign * float(est.intercept_[0])


def _representatives(binning: ScorecardBinning, k: int) -> tuple[np.ndarray, list[int]]:
    """Feature rows, one per bin of field k (a categorical field: then one with no category
    set), and a categorical field's bin of each one-hot column (-1: none)."""
    field = binning.fields[k]
    optb = binning.binned(field.name)
    rows: list[np.ndarray] = []
    width = binning.n_features_in_
    if not field.categorical:
        edges = [float(e) for e in optb.splits]
        values = [edges[0] - 1.0 - abs(edges[0]), *edges] if edges else [0.0]
        for v in values:  # below the first edge, then each edge (x == edge: the next bin)
            row = np.zeros(width)
            row[field.columns[0]] = v
            rows.append(row)
        return np.array(rows), []
    groups = [[str(c) for c in group] for group in optb.splits]
    bins = [next((b for b, g in enumerate(groups) if c in g), -1) for c in field.categories or ()]
    for group in [*groups, []]:
        row = np.zeros(width)
        if group:
            row[field.columns[(field.categories or ()).index(group[0])]] = 1.0
        rows.append(row)
    return np.array(rows), bins


def scorecard_head(model: CalibratedModel) -> dict[str, Any]:
    """The plan head of a fitted scorecard: intercept and each field's bins' log-odds."""
    binning, coef, intercept = _parts(model)
    fields = []
    for k, field in enumerate(binning.fields):
        rows, bins = _representatives(binning, k)
        log_odds = (coef[k] * binning.transform(rows)[:, k]).tolist()
        entry: dict[str, Any] = {"name": field.name, "columns": list(field.columns)}
        if field.categorical:
            entry |= {"bins": bins, "log_odds": log_odds[:-1], "unknown": log_odds[-1]}
        else:
            entry |= {"edges": [float(e) for e in binning.binned(field.name).splits],
                      "log_odds": log_odds}
        fields.append(entry)
    return {"kind": "scorecard", "intercept": intercept, "fields": fields}


def _number(v: float) -> str:
    """An edge as people read it: 20.5, 1,250,000, 0.0125."""
    if abs(v) >= 1:
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return f"{v:.4g}"


def _labels(edges: list[float]) -> list[tuple[str, float | None, float | None]]:
    if not edges:
        return [("any value", None, None)]
    out: list[tuple[str, float | None, float | None]] = [(f"< {_number(edges[0])}", None,
                                                          edges[0])]
    out += [(f"[{_number(lo)}, {_number(hi)})", lo, hi) for lo, hi in zip(edges, edges[1:],
                                                                           strict=False)]
    return out + [(f">= {_number(edges[-1])}", edges[-1], None)]


def points_table(model: CalibratedModel, scaling: ScoreScaling) -> list[dict[str, Any]]:
    """A row per field and bin: its points on the score scale, and optbinning's statistics of
    the training rows in it (count, event rate, WoE, IV); a categorical field's last row is
    any category not seen in training."""
    head = scorecard_head(model)
    calibration = model.calibrator.spec
    if calibration["kind"] != "sigmoid":
        raise PlanError("a scorecard's points need its sigmoid calibration")
    s, t = float(calibration["slope"]), float(calibration["intercept"])
    share = (scaling.offset - scaling.factor * (s * head["intercept"] + t)) / len(head["fields"])
    binning = model.pipeline.named_steps["binning"]
    rows: list[dict[str, Any]] = []
    for field in head["fields"]:
        table = binning.table(field["name"])
        field_iv = float(table["IV"].sum())
        if "edges" in field:
            labels = _labels(field["edges"])
        else:
            groups = binning.binned(field["name"]).splits
            labels = [(", ".join(str(c) for c in g), None, None) for g in groups]
        for b, (label, lo, hi) in enumerate(labels):
            stats = table.iloc[b]
            rows.append({"field": field["name"], "bin": label, "lower": lo, "upper": hi,
                         "points": share - scaling.factor * s * field["log_odds"][b],
                         "count": int(stats["Count"]), "event_rate": float(stats["Event rate"]),
                         "woe": float(stats["WoE"]), "iv": float(stats["IV"]),
                         "field_iv": field_iv})
        if "unknown" in field:
            rows.append({"field": field["name"], "bin": UNSEEN, "lower": None, "upper": None,
                         "points": share - scaling.factor * s * field["unknown"], "count": 0,
                         "event_rate": None, "woe": None, "iv": None, "field_iv": field_iv})
    return rows


def points_csv(rows: list[dict[str, Any]]) -> bytes:
    """The points table as CSV (full precision; empty cells where a value does not apply)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if r[k] is None else r[k] for k in COLUMNS} for r in rows)
    return out.getvalue().encode()


def card_section(model: CalibratedModel, rows: list[dict[str, Any]],
                 settings: ScorecardSettings) -> str:
    """The model card's part on the scorecard: the fields' information values and the points
    table."""
    strengths = field_strengths(model.pipeline.named_steps["binning"], settings.iv_weak,
                                settings.iv_strong)
    verdicts = {"weak": f"weak (IV below {settings.iv_weak:g})",
                "strong": f"suspiciously strong (IV above {settings.iv_strong:g}): a leak?",
                "ok": "ok"}
    return "\n\n".join([
        "## Scorecard",
        "Optimal bins per field (optbinning) with the spec's trends of the default rate, a "
        "logistic regression on their weights of evidence, and points on the score scale: an "
        "application's points add up to its credit score (before rounding and the clip). A "
        "missing value scores in the bin of the training median it is imputed with. The table "
        "is also in `scorecard.csv` (`credit-risk models scorecard VERSION`).",
        "### Information value per field",
        _table(["field", "IV", "verdict"],
               [[s["field"], s["iv"], verdicts[s["verdict"]]] for s in strengths]),
        "### Points",
        _table(["field", "bin", "points", "count", "event rate", "WoE", "IV"],
               [[r["field"], r["bin"], f"{r['points']:.1f}", r["count"],
                 *("" if r[k] is None else r[k] for k in ("event_rate", "woe", "iv"))]
                for r in rows]),
    ])


def scorecard_artifacts(model: CalibratedModel, scaling: ScoreScaling,
                        settings: ScorecardSettings) -> tuple[str, dict[str, bytes]]:
    """The model card section and the version files of a scorecard (nothing for another
    model)."""
    if not is_scorecard(model):
        return "", {}
    rows = points_table(model, scaling)
    return card_section(model, rows, settings), {CSV_FILE: points_csv(rows)}
