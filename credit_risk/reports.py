"""Calibration report: reliability table and plot (PNG) of PDs against observed default rates."""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per equal-width PD bin: count, mean PD, observed default rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            rows.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "n": int(mask.sum()),
                         "mean_pd": float(p[mask].mean()), "default_rate": float(y[mask].mean())})
    return rows


def reliability_png(y: np.ndarray, curves: dict[str, np.ndarray], title: str) -> bytes:
    """A reliability diagram with one curve per named PD vector."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for label, p in curves.items():
        table = reliability_table(y, p)
        ax.plot([r["mean_pd"] for r in table], [r["default_rate"] for r in table], marker="o",
                label=label)
    ax.set_xlabel("mean predicted PD")
    ax.set_ylabel("observed default rate")
    ax.set_title(title)
    ax.legend(loc="upper left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
