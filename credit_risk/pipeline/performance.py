"""Performance on matured loans: decisions joined with observed outcomes, per model version
and monthly vintage, against the figures recorded at training time.

Pure functions: they take decisions and outcomes as records or DataFrames and return the
figures (`PerformanceFigures`, see run_reports); reading the decision log, loading outcomes
and emitting the alert live with the callers.

- A decision (application_id, decided_at, model_version, probability_of_default, rating)
  counts once it is `months_on_book` months old at `as_of` (matured); its outcome is "bad"
  when the application defaulted within that window (observed_at <= decided_at + months on
  book), "good" when it is known not to have (an outcome record observed by `as_of`).
  Matured decisions without a known outcome are counted, not judged.
- Per model version and per monthly vintage (the month of decided_at): n, defaults, ROC-AUC,
  Gini, KS, PR-AUC, Brier, calibration-in-the-large (mean PD vs observed default rate, with
  its binomial z) and n / defaults / default rate / mean PD per rating band.
- Alerts, for groups with enough loans and defaults to judge: ROC-AUC or KS dropped beyond
  a limit below the version's training figures (its manifest `metrics`), or a calibration
  gap beyond a limit that is also beyond `calibration_z` standard errors (so that a small
  vintage's noise does not fire).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.evaluate import classification_metrics
from credit_risk.pipeline.run_reports import PerformanceFigures, Thresholds
from credit_risk.scoring.bands import NAMES

__all__ = ["PerformanceDataError", "Thresholds", "performance_report", "group_metrics",
           "alerts_for", "decisions_frame", "matured"]

DECISION_COLUMNS = ("application_id", "decided_at", "model_version", "probability_of_default",
                    "rating")
OUTCOME_COLUMNS = ("application_id", "defaulted", "observed_at")
TRUE = frozenset({"1", "true", "t", "yes", "y"})
FALSE = frozenset({"0", "false", "f", "no", "n"})


class PerformanceDataError(CreditRiskError, ValueError):
    """Decisions or outcomes lack a column or hold a value that cannot be read."""


def decisions_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Decision-log records (`at`, `inputs.application_id` or `application_id`, model_version,
    probability_of_default, rating) as a decisions frame; records without an id are left out."""
    rows = []
    for r in records:
        inputs = r.get("inputs") or {}
        app_id = r.get("application_id", inputs.get("application_id"))
        if app_id is None or r.get("probability_of_default") is None:
            continue
        rows.append((str(app_id), r.get("decided_at", r.get("at")), r.get("model_version"),
                     r["probability_of_default"], r.get("rating")))
    return pd.DataFrame(rows, columns=list(DECISION_COLUMNS))


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PerformanceDataError(f"{what}: no column {', '.join(missing)}")


def _timestamps(values: pd.Series, what: str) -> pd.Series:
    """Naive UTC timestamps (offsets converted, naive values taken as UTC)."""
    try:
        return pd.to_datetime(values, utc=True, format="mixed").dt.tz_localize(None)
    except (ValueError, TypeError) as exc:
        raise PerformanceDataError(f"{what}: not a date or time: {exc}") from None


def _flags(values: pd.Series) -> pd.Series:
    """defaulted as booleans: true/false, yes/no, 1/0 (any case)."""
    if values.dtype == bool:
        return values
    text = values.astype(str).str.strip().str.lower()
    bad = ~text.isin(TRUE | FALSE)
    if bad.any():
        raise PerformanceDataError(f"outcomes: defaulted {values[bad].iloc[0]!r} is not "
                                   "yes/no, true/false or 1/0")
    return text.isin(TRUE)


def clean_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions typed; the latest decision per application and model version."""
    _require(decisions, DECISION_COLUMNS, "decisions")
    df = decisions.loc[:, list(DECISION_COLUMNS)].copy()
    df["application_id"] = df["application_id"].astype(str)
    df["decided_at"] = _timestamps(df["decided_at"], "decisions: decided_at")
    df["probability_of_default"] = pd.to_numeric(df["probability_of_default"], errors="coerce")
    if df["probability_of_default"].isna().any() or not df["probability_of_default"].between(
            0, 1).all():
        raise PerformanceDataError("decisions: a probability_of_default outside [0, 1]")
    df["model_version"] = df["model_version"].astype(str)
    df = df.sort_values("decided_at", kind="stable")
    return df.drop_duplicates(["application_id", "model_version"], keep="last")


def clean_outcomes(outcomes: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """One known outcome per application (observed by as_of): its first default, else its
    latest observation."""
    _require(outcomes, OUTCOME_COLUMNS, "outcomes")
    df = outcomes.loc[:, list(OUTCOME_COLUMNS)].copy()
    df["application_id"] = df["application_id"].astype(str)
    df["defaulted"] = _flags(df["defaulted"])
    df["observed_at"] = _timestamps(df["observed_at"], "outcomes: observed_at")
    df = df[df["observed_at"] <= pd.Timestamp(as_of)]
    first_default = df[df["defaulted"]].sort_values("observed_at").drop_duplicates(
        "application_id", keep="first")
    latest_good = df[~df["defaulted"] & ~df["application_id"].isin(
        first_default["application_id"])].sort_values("observed_at").drop_duplicates(
        "application_id", keep="last")
    return pd.concat([first_default, latest_good], ignore_index=True)


def matured(decisions: pd.DataFrame, outcomes: pd.DataFrame, as_of: datetime,
            months_on_book: int) -> tuple[pd.DataFrame, int]:
    """The matured decisions with a known outcome (`bad`: a default within the window,
    `vintage`: YYYY-MM of decided_at), and the number of matured ones without one."""
    as_of_ts = pd.Timestamp(as_of)
    if as_of_ts.tz is not None:
        as_of_ts = as_of_ts.tz_convert("UTC").tz_localize(None)
    d = clean_decisions(decisions)
    window_end = d["decided_at"] + pd.DateOffset(months=months_on_book)
    d = d.assign(window_end=window_end)[window_end <= as_of_ts]
    o = clean_outcomes(outcomes, as_of_ts.to_pydatetime())
    joined = d.merge(o, on="application_id", how="left")
    known = joined["defaulted"].notna()
    joined = joined[known].copy()
    joined["bad"] = joined["defaulted"].astype(bool) & (
        joined["observed_at"] <= joined["window_end"])
    joined["vintage"] = joined["decided_at"].dt.strftime("%Y-%m")
    return joined, int((~known).sum())


def group_metrics(y: np.ndarray, p: np.ndarray, ratings: Iterable[Any],
                  threshold: float = 0.5) -> dict[str, Any]:
    """The figures of one group of matured loans (None where one class is missing)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    n, defaults = len(y), int(y.sum())
    rate, mean_pd = (float(y.mean()), float(p.mean())) if n else (math.nan, math.nan)
    variance = float((p * (1 - p)).sum())
    out: dict[str, Any] = {
        "n": n, "defaults": defaults, "default_rate": rate, "mean_pd": mean_pd,
        "calibration_gap": rate - mean_pd,  # observed minus predicted
        "calibration_z": (defaults - float(p.sum())) / math.sqrt(variance) if variance else None,
        "roc_auc": None, "gini": None, "ks": None, "pr_auc": None,
        "brier": float(np.mean((p - y) ** 2)) if n else None,
    }
    if 0 < defaults < n:
        m = classification_metrics(y, p, threshold)
        out.update({k: m[k] for k in ("roc_auc", "gini", "ks", "pr_auc", "brier")})
    bands = pd.DataFrame({"rating": list(ratings), "y": y, "p": p})
    out["bands"] = [
        {"rating": name, "n": int(len(g)), "defaults": int(g["y"].sum()),
         "default_rate": float(g["y"].mean()) if len(g) else None,
         "mean_pd": float(g["p"].mean()) if len(g) else None}
        for name in NAMES for g in [bands[bands["rating"] == name]]
    ]
    return out


def alerts_for(figures: Mapping[str, Any], training: Mapping[str, Any] | None,
               limits: Thresholds) -> list[dict[str, Any]]:
    """The alerts one group's figures fire against its version's training figures."""
    if figures["n"] < limits.min_loans or figures["defaults"] < limits.min_defaults:
        return []
    fired = []
    for metric, limit in (("roc_auc", limits.max_roc_auc_drop), ("ks", limits.max_ks_drop)):
        now, then = figures.get(metric), (training or {}).get(metric)
        if now is not None and then is not None and then - now > limit:
            fired.append({"metric": metric, "value": now, "training": then, "limit": limit,
                          "message": f"{metric} {now:.3f} is {then - now:.3f} below its "
                                     f"training figure {then:.3f} (limit {limit})"})
    gap, z = figures["calibration_gap"], figures["calibration_z"]
    if abs(gap) > limits.max_calibration_gap and z is not None and abs(z) > limits.calibration_z:
        fired.append({"metric": "calibration_gap", "value": gap, "training": 0.0,
                      "limit": limits.max_calibration_gap,
                      "message": f"observed default rate {figures['default_rate']:.2%} vs mean "
                                 f"PD {figures['mean_pd']:.2%} (gap {gap:+.2%}, z {z:+.1f}; "
                                 f"limit {limits.max_calibration_gap:.2%})"})
    return fired


def performance_report(decisions: pd.DataFrame | Iterable[Mapping[str, Any]],
                       outcomes: pd.DataFrame | Iterable[Mapping[str, Any]],
                       as_of: datetime,
                       training: Mapping[str, Mapping[str, Any]],
                       limits: Thresholds | None = None) -> PerformanceFigures:
    """Figures and alerts per model version and per vintage of each version.

    `training` maps a model version to its manifest (its `metrics` and `threshold` are used)
    or directly to its metrics. Returns the figures: `versions` (each with `vintages`),
    `alerts` (each naming its version and vintage, None for the version as a whole), `alert`.
    """
    limits = limits or Thresholds()
    d = decisions if isinstance(decisions, pd.DataFrame) else pd.DataFrame(list(decisions))
    o = outcomes if isinstance(outcomes, pd.DataFrame) else pd.DataFrame(list(outcomes))
    if o.empty:
        o = pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    if d.empty:
        d = pd.DataFrame(columns=list(DECISION_COLUMNS))
    joined, without = matured(d, o, as_of, limits.months_on_book)
    versions, alerts = [], []
    for version, group in joined.groupby("model_version", sort=True):
        entry = training.get(str(version)) or {}
        recorded = entry.get("metrics", entry)
        threshold = float(entry.get("threshold", recorded.get("threshold", 0.5)))
        figures = _figures(group, threshold)
        fired = [{"model_version": version, "vintage": None, **a}
                 for a in alerts_for(figures, recorded, limits)]
        vintages = []
        for vintage, part in group.groupby("vintage", sort=True):
            v = {"vintage": vintage, **_figures(part, threshold)}
            v_alerts = [{"model_version": version, "vintage": vintage, **a}
                        for a in alerts_for(v, recorded, limits)]
            v["alerts"] = v_alerts
            fired += v_alerts
            vintages.append(v)
        versions.append({"model_version": version, **figures,
                         "training": {k: recorded.get(k) for k in ("roc_auc", "ks", "brier",
                                                                     "default_rate")},
                         "alerts": [a for a in fired if a["vintage"] is None],
                         "vintages": vintages})
        alerts += fired
    return PerformanceFigures(
        as_of=pd.Timestamp(as_of).isoformat(), thresholds=limits,
        matured_with_outcome=len(joined), matured_without_outcome=without,
        versions=versions, alerts=alerts, alert=bool(alerts))


def _figures(group: pd.DataFrame, threshold: float) -> dict[str, Any]:
    return group_metrics(group["bad"].to_numpy(), group["probability_of_default"].to_numpy(),
                         group["rating"], threshold)
