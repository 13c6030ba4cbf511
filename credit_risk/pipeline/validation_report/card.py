"""The validation report's section of the model card (Markdown)."""

from __future__ import annotations

from typing import Any

from credit_risk.pipeline.validation_report.model import (
    PLOT_FILE,
    Discrimination,
    GradeTest,
    ValidationReport,
)

TOP_FEATURES = 15


def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
              for row in rows]
    return "\n".join(lines)


def _light(light: str | None) -> str:
    return {"green": "green", "amber": "**amber**", "red": "**RED**"}.get(light or "", "n/a")


def _discrimination(d: Discrimination) -> list[Any]:
    return [d.n, d.defaults, f"{d.default_rate:.2%}", _f(d.roc_auc), _f(d.gini), _f(d.ks)]


def _grade(g: GradeTest) -> list[Any]:
    bounds = "" if g.pd_lower is None else f"[{g.pd_lower:.4%}, {g.pd_upper:.4%})"
    interval = "n/a" if g.interval is None else f"{g.interval[0]:.2%} to {g.interval[1]:.2%}"
    rate = "n/a" if g.observed_rate is None else f"{g.observed_rate:.2%}"
    pd_ = "n/a" if g.pd is None else f"{g.pd:.2%}"
    return [g.grade, bounds, g.n, g.defaults, pd_, rate, interval, _p(g.binomial_p),
            _p(g.jeffreys_p), _light(g.light)]


def validation_markdown(report: ValidationReport) -> str:
    """The section: discrimination overall and per segment, calibration per grade, stability,
    feature importance (see docs/validation-report.md for the rules)."""
    cal, st = report.calibration, report.stability
    lights = [g.light for g in cal.grades]
    out = [
        "## Validation report",
        f"On the {report.test_rows} test rows; the figures are in `validation_report.json`. "
        "Traffic lights: a calibration test is red when p < "
        f"{cal.red_p:g}, amber when p < {cal.amber_p:g}; the grade PSI is amber from "
        f"{st.psi_amber:g}, red from {st.psi_red:g}.",
        f"![validation report]({PLOT_FILE})",
        "### Discrimination",
        _table(["rows", "n", "defaults", "default rate", "ROC-AUC", "Gini", "KS"],
               [["all", *_discrimination(report.discrimination)]]),
    ]
    if report.segments:
        out.append("Per group of the protected columns (fairness groups) and of the spec's "
                   "`segments`; *few*: fewer than 20 defaults or non-defaults, read with care.")
    for seg in report.segments:
        label = "fairness group" if seg.kind == "fairness" else "segment"
        out.append(f"**{seg.field}** ({label})")
        out.append(_table(["group", "n", "defaults", "default rate", "ROC-AUC", "Gini", "KS"],
                          [[g.group + (" *few*" if g.few else ""), *_discrimination(g)]
                           for g in seg.groups]))
    out += [
        "### Calibration per grade",
        f"Grades: {cal.grades_from}. One-sided tests against a PD that is too low: binomial, "
        "and Jeffreys (its light shown), with the Jeffreys 95% interval of the default rate. "
        f"All rows: Jeffreys p {_p(cal.portfolio.jeffreys_p)}, "
        f"{_light(cal.portfolio.light)}; grades: {lights.count('green')} green, "
        f"{lights.count('amber')} amber, {lights.count('red')} red"
        + (f"; {cal.outside_scale} rows outside the scale." if cal.outside_scale else "."),
        _table(["grade", "PD range", "n", "defaults", "PD", "observed", "Jeffreys 95%",
                "binomial p", "Jeffreys p", "light"],
               [_grade(g) for g in [*cal.grades, cal.portfolio]]),
        "### Stability of the grades",
        f"PSI of the test rows' grades against the {st.train_rows} training rows': "
        f"{st.psi:.4f}, {_light(st.light)}.",
        _table(["grade", "training share", "test share"],
               [[s.grade, f"{s.train_share:.2%}", f"{s.test_share:.2%}"] for s in st.shares]),
        "### Feature importance",
    ]
    imp = report.importance
    if imp is None:
        out.append(f"Not computed: {report.importance_note or 'n/a'}.")
    else:
        out.append(f"{imp.description}, on {imp.rows} test rows; the largest "
                   f"{min(TOP_FEATURES, len(imp.features))} of {len(imp.features)}.")
        out.append(_table(["feature", "importance"] + (["std"] if imp.method == "permutation"
                                                       else []),
                          [[f"`{f.feature}`", _f(f.importance)]
                           + ([_f(f.std)] if imp.method == "permutation" else [])
                           for f in imp.features[:TOP_FEATURES]]))
    return "\n\n".join(out) + "\n"
