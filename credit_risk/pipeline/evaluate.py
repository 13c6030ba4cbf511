"""Evaluation metrics for probability-of-default models, and the decision threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)


def pd_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """The non-empty equal-width PD bins ([low, high), the last one includes 1): each with its
    count, mean PD and observed default rate. The binning of the calibration error and of the
    reliability table and diagram."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            rows.append({"low": b / bins, "high": (b + 1) / bins, "n": int(mask.sum()),
                         "mean_pd": float(p[mask].mean()), "default_rate": float(y[mask].mean())})
    return rows


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean PD| over equal-width PD bins, weighted by bin size."""
    n = len(p)
    return float(sum(r["n"] / n * abs(r["default_rate"] - r["mean_pd"])
                     for r in pd_bins(y, p, bins)))


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of defaults and non-defaults."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Every reported metric of one model on one labelled sample."""
    y = np.asarray(y).astype(int)
    pred = (np.asarray(p) >= threshold).astype(int)
    auc = roc_auc_score(y, p)
    return {
        "roc_auc": float(auc),
        "gini": float(2 * auc - 1),
        "ks": ks_statistic(y, p),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "threshold": float(threshold),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "default_rate": float(y.mean()),
        "flagged_rate": float(pred.mean()),
        "n": int(len(y)),
    }


def recall_threshold(y: np.ndarray, p: np.ndarray, target_recall: float) -> float:
    """The highest threshold whose recall (share of defaults flagged) reaches target_recall."""
    y = np.asarray(y).astype(int)
    scores = np.sort(np.asarray(p, dtype=float)[y == 1])[::-1]
    if not len(scores):
        raise ValueError("no defaults to reach a recall on")
    k = int(np.ceil(target_recall * len(scores)))
    return float(scores[max(k, 1) - 1])
