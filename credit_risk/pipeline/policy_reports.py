"""The decision policy's and the least discriminatory alternative search's parts of a run's
comparison report (typed, validated on write and read; pydantic only)."""

from __future__ import annotations

from typing import Any

from credit_risk.report_model import ReportModel


class OperatingPoint(ReportModel):
    """What a threshold does on one labelled sample (applications with PD < threshold are
    approved). Loss figures are in units of the exposure (per loan without one)."""

    threshold: float
    n: int
    approval_rate: float
    bad_rate: float | None  # default rate among the approved
    defaults_caught: float | None  # share of the defaults declined
    expected_loss: float  # sum of PD x LGD x exposure over the approved
    expected_loss_rate: float | None  # expected loss per unit of approved exposure
    realised_loss_rate: float | None  # LGD x exposure of approved defaults per unit approved


class DecisionPolicy(ReportModel):
    """The policy that chose the threshold, its operating point where it was chosen (the
    out-of-fold PDs of the training part) and on the test set, and the test curve around it."""

    policy: str
    parameters: dict[str, Any]
    exposure: str | None  # the spec's exposure field; None: every loan counts 1
    lgd: float
    validation: OperatingPoint | None  # None: a candidate trained before out-of-fold PDs kept
    test: OperatingPoint
    curve: list[OperatingPoint]


class Driver(ReportModel):
    """A model feature and the selected candidate's approval-rate ratio with it neutralised
    (set to its typical value, at the same approval rate) on the training rows."""

    feature: str
    ratio: float
    gain: float


class Alternative(ReportModel):
    """One alternative tried: a candidate as trained, or refitted without a feature. It is
    chosen on cross-validated figures (out-of-fold PDs of the training part); its test
    figures are reported, never used to choose."""

    model: str
    base: str
    without: list[str]
    cv_roc_auc: float | None  # None: not fitted (see note)
    cv_ratio: float | None  # lowest approval-rate ratio over the protected attributes
    cv_approval_rate: float | None
    test_roc_auc: float | None = None
    test_ratio: float | None = None
    test_approval_rate: float | None = None
    within_auc: bool
    note: str = ""


class AlternativeSearch(ReportModel):
    """The search for a less discriminatory alternative to the selected candidate."""

    trigger: str  # "fairness gate failed" or "always"
    selected: str  # the candidate the search started from
    max_auc_loss: float
    min_ratio: float
    drivers: list[Driver]
    tried: list[Alternative]
    chosen: str | None
    outcome: str  # what was chosen and why, or why none
