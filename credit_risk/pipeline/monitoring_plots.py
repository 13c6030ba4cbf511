"""The monitoring run's plots (PNG bytes): PSI per field, and the performance figures per
vintage and rating band. Drawn on a `Figure` of its own (no pyplot state: safe in threads)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from credit_risk.scoring.bands import NAMES

if TYPE_CHECKING:
    from credit_risk.pipeline.run_reports import PerformanceFigures


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def psi_plot(psi: Sequence[Mapping[str, Any]], threshold: float) -> bytes:
    """PSI of each field, largest first, the drift threshold as a line."""
    from matplotlib.figure import Figure

    rows = list(psi)[::-1]
    fig = Figure(figsize=(7, max(2.0, 0.3 * len(rows) + 1)))
    ax = fig.add_subplot()
    colours = ["#b00020" if r["psi"] >= threshold else "#3366aa" for r in rows]
    ax.barh([r["field"] for r in rows], [r["psi"] for r in rows], color=colours)
    ax.axvline(threshold, color="#b00020", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("PSI (recent traffic vs training data)")
    ax.legend(loc="lower right")
    ax.set_title("Population stability per field")
    return _png(fig)


def performance_plot(report: PerformanceFigures) -> bytes:
    """Per model version: ROC-AUC per vintage against its training figure, mean PD vs
    observed default rate per vintage, and default rate per rating band."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8))
    auc, cal, bands = fig.subplots(1, 3)
    for i, v in enumerate(report.versions):
        colour = f"C{i}"
        vintages = v.vintages
        months = [x.vintage for x in vintages]
        name = v.model_version
        auc.plot(months, [x.roc_auc if x.roc_auc is not None else float("nan")
                          for x in vintages], "o-", color=colour, label=name)
        trained = v.training.roc_auc
        if trained is not None:
            auc.axhline(trained, color=colour, linestyle="--", linewidth=1,
                        label=f"{name} at training")
        cal.plot(months, [x.mean_pd for x in vintages], "o--", color=colour,
                 label=f"{name} mean PD")
        cal.plot(months, [x.default_rate for x in vintages], "s-", color=colour,
                 label=f"{name} observed")
        by_band = {b.rating: b for b in v.bands}
        width = 0.8 / max(1, len(report.versions))
        bands.bar([j + i * width for j in range(len(NAMES))],
                  [by_band[n].default_rate or 0.0 for n in NAMES], width=width,
                  color=colour, label=name)
    auc.set_title("ROC-AUC per vintage")
    cal.set_title("Calibration per vintage")
    bands.set_title("Default rate per rating band")
    bands.set_xticks(range(len(NAMES)), list(NAMES))
    for ax in (auc, cal):
        ax.tick_params(axis="x", labelrotation=45)
    for ax in (auc, cal, bands):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if not report.versions:
        auc.text(0.5, 0.5, "no matured loans with outcomes", ha="center",
                 transform=auc.transAxes)
    fig.tight_layout()
    return _png(fig)
