"""validation_report.json: the typed validation report of a version (pydantic only)."""

from __future__ import annotations

from typing import Literal

from credit_risk.report_model import ReportModel

REPORT_FILE = "validation_report.json"
PLOT_FILE = "validation_report.png"

Light = Literal["green", "amber", "red"]


class Discrimination(ReportModel):
    """ROC-AUC, Gini and KS of a group of rows (None when the group lacks a class)."""

    n: int
    defaults: int
    default_rate: float
    roc_auc: float | None
    gini: float | None
    ks: float | None


class SegmentGroup(Discrimination):
    group: str
    few: bool  # fewer than MIN_CLASS_ROWS defaults or non-defaults: read with care


class Segment(ReportModel):
    """A column's groups: a fairness group (protected) or a segment the spec names."""

    field: str
    kind: Literal["fairness", "segment"]
    groups: list[SegmentGroup]


class GradeTest(ReportModel):
    """The calibration of one grade (or of all rows): observed defaults against the PD.

    Both tests are one-sided, against a PD that is too low (H0: the default rate is at most
    `pd`): `binomial_p` = P(X >= defaults | n, pd); `jeffreys_p` = the Jeffreys posterior
    Beta(defaults + 1/2, n - defaults + 1/2) below `pd`. `interval`: that posterior's
    equal-tailed 95% interval of the default rate. The light is the Jeffreys test's.
    """

    grade: str
    pd_lower: float | None
    pd_upper: float | None
    n: int
    defaults: int
    observed_rate: float | None
    pd: float | None
    binomial_p: float | None
    jeffreys_p: float | None
    interval: tuple[float, float] | None
    light: Light | None  # None: no rows in the grade


class Calibration(ReportModel):
    grades_from: str  # "master scale" or how the default grades were made
    amber_p: float
    red_p: float
    grades: list[GradeTest]
    portfolio: GradeTest
    outside_scale: int  # test rows whose PD is in no grade


class GradeShare(ReportModel):
    grade: str
    train_share: float
    test_share: float


class Stability(ReportModel):
    """The grade distribution of the test rows against the training rows."""

    psi: float
    psi_amber: float
    psi_red: float
    light: Light
    shares: list[GradeShare]
    train_rows: int
    test_rows: int


class FeatureImportance(ReportModel):
    feature: str
    importance: float
    std: float | None = None  # permutation importance: across the shuffles


class Importance(ReportModel):
    method: Literal["xgboost_contributions", "standardised_coefficients", "permutation"]
    description: str
    rows: int
    features: list[FeatureImportance]  # largest |importance| first


class ValidationReport(ReportModel):
    """validation_report.json: what a model validator reads about one version."""

    KIND = "validation report"
    model: str
    test_rows: int
    discrimination: Discrimination
    segments: list[Segment]
    calibration: Calibration
    stability: Stability
    importance: Importance | None
    importance_note: str | None = None  # why there is no importance, when there is none
