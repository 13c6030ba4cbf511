"""Calibration report: reliability table and plot (PNG) of PDs against observed default rates."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from credit_risk.pipeline.evaluate import pd_bins
from credit_risk.pipeline.run_reports import CandidateSummary, ReliabilityRow
from credit_risk.tables import text_table


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[ReliabilityRow]:
    """Per equal-width PD bin: count, mean PD, observed default rate."""
    return [ReliabilityRow(bin=f"{r['low']:.1f}-{r['high']:.1f}", n=r["n"], mean_pd=r["mean_pd"],
                           default_rate=r["default_rate"]) for r in pd_bins(y, p, bins)]


def reliability_png(y: np.ndarray, curves: dict[str, np.ndarray], title: str) -> bytes:
    """A reliability diagram with one curve per named PD vector."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for label, p in curves.items():
        table = reliability_table(y, p)
        ax.plot([r.mean_pd for r in table], [r.default_rate for r in table], marker="o",
                label=label)
    ax.set_xlabel("mean predicted PD")
    ax.set_ylabel("observed default rate")
    ax.set_title(title)
    ax.legend(loc="upper left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


COMPARISON_COLUMNS = ["model", "cv_roc_auc", "roc_auc", "gini", "ks", "pr_auc", "brier", "ece",
                      "ece_uncalibrated", "threshold", "precision", "recall", "f1"]


def comparison_table(candidates: Sequence[CandidateSummary]) -> str:
    """Every candidate's test metrics, one row each."""
    rows = [{"model": r.model, "cv_roc_auc": r.cv_roc_auc, **r.test.model_dump()}
            for r in candidates]
    return text_table(rows, COMPARISON_COLUMNS)
