"""The model card's parts on the decision policy (operating point and curve) and on the least
discriminatory alternative search (Markdown)."""

from __future__ import annotations

import html
from typing import Any

from credit_risk.pipeline.decision_policy import OPERATING_PNG
from credit_risk.pipeline.policy_reports import AlternativeSearch, DecisionPolicy, OperatingPoint


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v)).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows])


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _point(p: OperatingPoint, unit: str) -> str:
    return (f"{_pct(p.approval_rate)} approved, default rate among the approved "
            f"{_pct(p.bad_rate)}, {_pct(p.defaults_caught)} of the defaults declined, expected "
            f"loss {p.expected_loss:,.2f} {unit} ({_pct(p.expected_loss_rate)} of the approved "
            f"exposure; realised {_pct(p.realised_loss_rate)})")


def policy_sections(policy: DecisionPolicy | None) -> list[str]:
    """The operating point where the threshold was chosen and on the test set, the test curve
    around it, and its plot (the run writes it with the report)."""
    if policy is None:
        return []
    unit = f"(in `{policy.exposure}`)" if policy.exposure else "loans (exposure 1 per loan)"
    out = [f"Operating point (LGD {policy.lgd}): on the out-of-fold PDs where the threshold "
           f"was chosen, {_point(policy.validation, unit)}; on the test set, "
           f"{_point(policy.test, unit)}." if policy.validation is not None else
           f"Operating point (LGD {policy.lgd}) on the test set: {_point(policy.test, unit)}.",
           "Around it on the test set:",
           _table(["threshold", "approval rate", "bad rate among approved", "defaults declined",
                   "expected loss", "expected loss rate", ""],
                  [[p.threshold, p.approval_rate, p.bad_rate, p.defaults_caught,
                    p.expected_loss, p.expected_loss_rate,
                    "**chosen**" if p.threshold == policy.test.threshold else ""]
                   for p in policy.curve]),
           f"![operating curve]({OPERATING_PNG})"]
    return out


def alternative_sections(search: AlternativeSearch | None) -> list[str]:
    """Every alternative tried, the drivers of the disparity, and the outcome."""
    if search is None:
        return []
    drivers = ", ".join(f"`{d.feature}` (ratio {d.ratio:.3f} without it, {d.gain:+.3f})"
                        for d in search.drivers[:5]) or "none measured"
    return [
        "## Less discriminatory alternatives",
        f"Searched because: {search.trigger}. Starting from `{search.selected}`: every "
        f"candidate, and each one refitted without a feature that drives the disparity, judged "
        f"on cross-validated figures (out-of-fold PDs of the training part), within "
        f"{search.max_auc_loss:.4f} of its ROC-AUC, for the best lowest/highest approval-rate "
        f"ratio (required: {search.min_ratio:.2f}). Test figures are shown, not used to choose.",
        f"Features driving the disparity (the ratio with the feature neutralised): {drivers}.",
        _table(["alternative", "without", "cv ROC-AUC", "cv ratio", "cv approval rate",
                "within AUC loss", "test ROC-AUC", "test ratio", "test approval rate", "note"],
               [[a.model, ", ".join(a.without) or "-", a.cv_roc_auc, a.cv_ratio,
                 a.cv_approval_rate, "yes" if a.within_auc else "no", a.test_roc_auc,
                 a.test_ratio, a.test_approval_rate, a.note] for a in search.tried]),
        f"Outcome: {search.outcome}.",
    ]
