"""Decision policies: the High/Low threshold chosen on out-of-fold PDs, and its operating point.

An application is approved (Low risk) when its PD is below the threshold. Each policy picks
how many of the lowest-PD applications to approve, cutting only between distinct PDs so that
the threshold reproduces the chosen split (see docs/modelling.md, "Decision policies").
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.config import Settings
from credit_risk.config.policy import PolicySettings
from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.evaluate import recall_threshold
from credit_risk.pipeline.policy_reports import DecisionPolicy, OperatingPoint
from credit_risk.spec.dataset import DatasetSpec

OPERATING_PNG = "operating_curve.png"  # the plot of the run folder and the version
CURVE_STEPS = (-0.10, -0.05, -0.02, 0.0, 0.02, 0.05, 0.10)  # approval rates around the chosen


class PolicyError(CreditRiskError, ValueError):
    """The decision policy cannot be applied (no exposure field, an unreachable target)."""


def dataset_policy(settings: Settings, spec: DatasetSpec) -> Settings:
    """The settings with the dataset spec's `policy:` entries over the decision policy's."""
    return settings.replace(**spec.policy) if spec.policy else settings


def check_policy(policy: PolicySettings, spec: DatasetSpec) -> None:
    """Before any training: the expected_loss policy needs the spec's exposure field."""
    if policy.threshold_policy == "expected_loss" and spec.exposure is None:
        raise PolicyError(f"threshold_policy expected_loss weighs loans by their exposure, and "
                          f"dataset spec {spec.name!r} names none: add `exposure: <numeric "
                          "column>` (e.g. the loan amount) to the spec, or choose another "
                          "policy")


def exposure_of(spec: DatasetSpec, X: pd.DataFrame) -> np.ndarray | None:
    """Each row's exposure from the spec's exposure field (missing or negative: the median,
    0); None when the spec names none or the rows lack it."""
    if spec.exposure is None or spec.exposure not in X.columns:
        return None
    x = pd.to_numeric(X[spec.exposure], errors="coerce").to_numpy(dtype=float)
    fill = np.nanmedian(x) if np.isfinite(x).any() else 1.0
    return np.clip(np.where(np.isfinite(x), x, fill), 0.0, None)


def _ascending(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> tuple:
    """Rows by ascending PD, and which approval counts k (the k lowest) cut between
    distinct PDs."""
    order = np.argsort(p, kind="stable")
    ys, ps = np.asarray(y, dtype=int)[order], np.asarray(p, dtype=float)[order]
    ws = np.ones(len(ps)) if w is None else np.asarray(w, dtype=float)[order]
    valid = np.ones(len(ps) + 1, dtype=bool)
    valid[1:-1] = ps[:-1] < ps[1:]
    return ys, ps, ws, valid


def _threshold(ps: np.ndarray, k: int) -> float:
    """The threshold approving the k lowest-PD rows: the lowest PD declined."""
    return float(ps[k]) if k < len(ps) else float(min(1.0, ps[-1] + 1e-9))


def _cheapest(cost: np.ndarray, valid: np.ndarray) -> int:
    """The valid approval count of the lowest cost; of a tie, the most approvals."""
    masked = np.where(valid, cost, np.inf)
    return int(np.flatnonzero(masked == masked.min())[-1])


def _weighted_cost(ys: np.ndarray, ws: np.ndarray, missed: float, rejected: float) -> np.ndarray:
    """Cost of approving the k lowest, for every k: missed x approved bad weight + rejected x
    declined good weight."""
    bad = np.concatenate([[0.0], np.cumsum(ws * ys)])
    good = np.concatenate([[0.0], np.cumsum(ws * (1 - ys))])
    return missed * bad + rejected * (good[-1] - good)


def policy_threshold(y: np.ndarray, p: np.ndarray, policy: PolicySettings,
                     exposure: np.ndarray | None = None) -> float:
    """The High/Low threshold the policy chooses on labelled validation PDs."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    if len(p) == 0:
        raise PolicyError("no validation PDs to choose a threshold on")
    name = policy.threshold_policy
    if name == "recall":
        return recall_threshold(y, p, policy.target_recall)
    if name == "expected_loss" and exposure is None:
        raise PolicyError("threshold_policy expected_loss needs each loan's exposure: name the "
                          "exposure field in the dataset spec (`exposure:`)")
    ys, ps, ws, valid = _ascending(y, p, exposure if name == "expected_loss" else None)
    n = len(ps)
    if name == "cost":
        k = _cheapest(_weighted_cost(ys, ws, policy.cost_missed_default,
                                     policy.cost_rejected_good), valid)
    elif name == "expected_loss":
        k = _cheapest(_weighted_cost(ys, ws, policy.lgd, policy.margin), valid)
    elif name == "approval_rate":
        gap = np.abs(np.arange(n + 1) - policy.target_approval_rate * n)
        k = int(np.argmin(np.where(valid, gap, np.inf)))  # of a tie, the fewer approvals
    elif name == "bad_rate":
        counts = np.arange(1, n + 1)
        rate = np.cumsum(ys) / counts
        ok = np.flatnonzero(valid[1:] & (rate <= policy.max_bad_rate + 1e-12))
        if not len(ok):
            raise PolicyError(
                f"no threshold keeps the default rate among the approved at or below "
                f"max_bad_rate {policy.max_bad_rate:.4f}: the lowest it reaches at any "
                f"threshold is {rate[valid[1:]].min():.4f}; raise max_bad_rate or choose "
                "another policy")
        k = int(counts[ok[-1]])
    else:  # the settings refuse any other name; a guard for hand-built settings
        raise PolicyError(f"unknown threshold_policy {name!r}")
    return _threshold(ps, k)


def describe_policy(policy: PolicySettings) -> dict[str, Any]:
    """The policy and its parameters, as the manifest and the model card show them."""
    name = policy.threshold_policy
    what = {
        "cost": ("minimum expected cost on out-of-fold PDs",
                 {"cost_missed_default": policy.cost_missed_default,
                  "cost_rejected_good": policy.cost_rejected_good}),
        "recall": ("highest threshold reaching the target recall on out-of-fold PDs",
                   {"target_recall": policy.target_recall}),
        "approval_rate": ("the target approval rate on out-of-fold PDs",
                          {"target_approval_rate": policy.target_approval_rate}),
        "bad_rate": ("most approvals with the default rate among the approved at most "
                     "max_bad_rate on out-of-fold PDs", {"max_bad_rate": policy.max_bad_rate}),
        "expected_loss": ("minimum loss (LGD x exposure of approved defaults) plus forgone "
                          "margin (margin x exposure of declined good loans) on out-of-fold PDs",
                          {"lgd": policy.lgd, "margin": policy.margin}),
    }[name]
    return {"policy": what[0], "name": name, **what[1]}


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float, lgd: float,
                    exposure: np.ndarray | None = None) -> OperatingPoint:
    """Approval rate, bad rate among the approved, defaults caught and expected loss."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    w = np.ones(len(p)) if exposure is None else np.asarray(exposure, dtype=float)
    approved = p < threshold
    exposure_approved = float(w[approved].sum())
    expected = float((p * lgd * w)[approved].sum())
    realised = float((lgd * w * y)[approved].sum())
    return OperatingPoint(
        threshold=float(threshold), n=len(p), approval_rate=float(approved.mean()),
        bad_rate=float(y[approved].mean()) if approved.any() else None,
        defaults_caught=float((y[~approved]).sum() / y.sum()) if y.sum() else None,
        expected_loss=expected,
        expected_loss_rate=expected / exposure_approved if exposure_approved > 0 else None,
        realised_loss_rate=realised / exposure_approved if exposure_approved > 0 else None)


def operating_curve(y: np.ndarray, p: np.ndarray, threshold: float, lgd: float,
                    exposure: np.ndarray | None = None) -> list[OperatingPoint]:
    """The operating points at approval rates around the chosen threshold's (CURVE_STEPS)."""
    p = np.asarray(p, dtype=float)
    rate = float((p < threshold).mean())
    thresholds = {float(threshold)}
    for step in CURVE_STEPS:
        share = rate + step
        if 0.0 < share < 1.0 and step:
            thresholds.add(float(np.quantile(p, share, method="higher")))
    return [operating_point(y, p, t, lgd, exposure) for t in sorted(thresholds)]


def decision_policy_report(policy: PolicySettings, spec: DatasetSpec, threshold: float,
                           validation: tuple | None, test: tuple) -> DecisionPolicy:
    """The policy's report: `validation` and `test` are (X, y, PDs) of the out-of-fold
    training rows (None when unknown) and of the test set."""
    def point(X: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> OperatingPoint:
        return operating_point(y, p, threshold, policy.lgd, exposure_of(spec, X))

    X, y, p = test
    described = describe_policy(policy)
    return DecisionPolicy(
        policy=described.pop("name"), parameters=described, exposure=spec.exposure,
        lgd=policy.lgd, validation=point(*validation) if validation is not None else None,
        test=point(X, y, p), curve=operating_curve(y, p, threshold, policy.lgd,
                                                    exposure_of(spec, X)))


def operating_png(y: np.ndarray, p: np.ndarray, threshold: float, title: str) -> bytes:
    """Bad rate among the approved and share of defaults caught against the approval rate,
    over every threshold, with the chosen one marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    ys = y[np.argsort(p, kind="stable")]
    k = np.arange(1, len(ys) + 1)
    approval, bad = k / len(ys), np.cumsum(ys) / k
    caught = 1 - np.cumsum(ys) / max(int(ys.sum()), 1)
    chosen = operating_point(y, p, threshold, 1.0)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(approval, bad, label="default rate among the approved")
    ax.plot(approval, caught, label="share of defaults declined")
    ax.axvline(chosen.approval_rate, color="grey", linestyle="--",
               label=f"threshold {threshold:.4f}: {chosen.approval_rate:.1%} approved")
    ax.set_xlabel("approval rate")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
