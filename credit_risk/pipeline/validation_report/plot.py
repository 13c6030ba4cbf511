"""The validation report's figure: calibration per grade, grade shares, feature importance."""

from __future__ import annotations

import io

from credit_risk.pipeline.validation_report.model import ValidationReport

COLOURS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828", None: "#999999"}
TOP_FEATURES = 15


def report_png(report: ValidationReport) -> bytes:
    """Three panels as a PNG: observed default rate against PD per grade (Jeffreys 95%
    intervals, coloured by traffic light), grade shares in training and test rows, and the
    largest feature importances."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (cal, shares, imp) = plt.subplots(1, 3, figsize=(16, 5), dpi=90, layout="constrained",
                                          width_ratios=(1, 1, 1.3))
    grades = [g for g in report.calibration.grades if g.n]
    x = range(len(grades))
    cal.plot(list(x), [g.pd for g in grades], marker="_", markersize=18, linestyle="none",
             color="black", label="PD")
    for i, g in zip(x, grades, strict=True):
        assert g.interval is not None and g.observed_rate is not None
        low, high = g.interval
        cal.errorbar([i], [g.observed_rate], yerr=[[g.observed_rate - low],
                                                   [high - g.observed_rate]],
                     fmt="o", color=COLOURS[g.light], capsize=3)
    cal.set_xticks(list(x), [g.grade for g in grades], rotation=45)
    cal.set_yscale("symlog", linthresh=0.01)  # low-PD grades stay readable beside high ones
    cal.set_ylim(0, 1)
    cal.set_ylabel("default rate")
    cal.set_title("Observed default rate (Jeffreys 95%) vs PD")
    cal.legend(loc="upper left")

    st = report.stability
    pos = range(len(st.shares))
    shares.bar([i - 0.2 for i in pos], [s.train_share for s in st.shares], width=0.4,
               label="training")
    shares.bar([i + 0.2 for i in pos], [s.test_share for s in st.shares], width=0.4,
               label="test")
    shares.set_xticks(list(pos), [s.grade for s in st.shares], rotation=45)
    shares.set_title(f"Grade shares: PSI {st.psi:.3f} ({st.light})")
    shares.legend()

    if report.importance is not None:
        top = report.importance.features[:TOP_FEATURES][::-1]
        imp.barh([f.feature for f in top], [f.importance for f in top], color="#3f51b5")
        imp.set_title(f"Feature importance ({report.importance.method})")
    else:
        imp.set_axis_off()
        imp.set_title("No feature importance")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
