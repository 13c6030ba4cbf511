"""The reports runs write, as typed models validated on write and on read (see report_model).

- `Comparison` (a training run's comparison.json): every candidate and the champion on the
  same test set, the fairness check, the gate's limits and decision.
- `DriftReport` (a monitoring run's drift.json): PSI per field of recent traffic against the
  champion's training inputs.
- `PerformanceReport` (a monitoring run's performance.json): matured decisions against their
  outcomes, per model version and vintage, and the alerts.

Only pydantic here (no pandas, no scikit-learn): the CLI and the Airflow pages read these.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, TypeVar

from pydantic import Discriminator, Field, Tag, model_validator

from credit_risk.pipeline.policy_reports import AlternativeSearch, DecisionPolicy
from credit_risk.report_model import ReportError, ReportModel

if TYPE_CHECKING:
    from credit_risk.config import Settings

__all__ = ["Comparison", "DriftReport", "PerformanceReport", "ReportError", "read_report",
           "write_report"]

R = TypeVar("R", bound=ReportModel)


def read_report(kind: type[R], path: Path | str) -> R:
    """A report file (a local path or a URL) as `kind`; ReportError when absent or malformed."""
    from credit_risk.pipeline.run_paths import local_or_url, read_bytes

    try:
        text = read_bytes(local_or_url(str(path)))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such {kind.KIND}") from None
    return kind.loads(text, str(path))


def write_report(report: ReportModel, path: Path | str) -> str:
    """Write a report (a local path or a URL); its path."""
    from credit_risk.pipeline.run_paths import write_text

    write_text(path, report.dumps())
    return str(path)


# -- the comparison ------------------------------------------------------------------------

class Metrics(ReportModel):
    """Every reported metric of one model on one labelled sample (classification_metrics)."""

    roc_auc: float
    gini: float
    ks: float
    pr_auc: float
    brier: float
    ece: float
    threshold: float
    precision: float
    recall: float
    f1: float
    default_rate: float
    flagged_rate: float
    n: int


class CandidateMetrics(Metrics):
    """A candidate's test metrics, with the calibration error and Brier score before
    calibration."""

    ece_uncalibrated: float
    brier_uncalibrated: float


class CandidateSummary(ReportModel):
    """A candidate's cross-validated and test figures (a row of a manifest's `comparison`)."""

    KIND = "candidate summary"
    model: str
    cv_roc_auc: float
    test: CandidateMetrics

    @classmethod
    def parse_list(cls, raw: Any, where: str) -> list[CandidateSummary]:
        """A list of summaries (a manifest's `comparison`); ReportError naming the bad one."""
        if not isinstance(raw, list):
            raise ReportError(f"{where}: not a list of candidates")
        return [cls.parse(r, f"{where}[{i}]") for i, r in enumerate(raw)]


class CandidateResult(CandidateSummary):
    """One trained candidate: its search, its cross-validated and test figures."""

    path: str
    params: dict[str, Any]
    validation: dict[str, float]
    search: list[dict[str, Any]]
    fit_seconds: float
    threshold: float

    def summary(self) -> CandidateSummary:
        return CandidateSummary(model=self.model, cv_roc_auc=self.cv_roc_auc, test=self.test)


class ComparableChampion(Metrics):
    """The champion's metrics on this run's test set."""

    version: str
    comparable: Literal[True]


class IncomparableChampion(ReportModel):
    """A champion that cannot be judged on this test set, and why."""

    version: str | None
    comparable: Literal[False]
    note: str


def _champion_kind(raw: Any) -> str:
    comparable = raw.get("comparable") if isinstance(raw, dict) else getattr(raw, "comparable",
                                                                             None)
    return "comparable" if comparable is True else "incomparable"


# Errors name the branch: champion.comparable.roc_auc, champion.incomparable.note.
Champion = Annotated[Annotated[ComparableChampion, Tag("comparable")]
                     | Annotated[IncomparableChampion, Tag("incomparable")],
                     Discriminator(_champion_kind)]


class SplitRule(ReportModel):
    key: str | None
    seed: int
    test_size: float


class SplitInfo(ReportModel):
    """The one train/test split of a run (split.json without its spec)."""

    dataset: str
    data_fingerprint: str
    train_rows: int
    test_rows: int
    train_default_rate: float
    test_default_rate: float
    split_rule: SplitRule
    test_fingerprint: str


class SplitRecord(SplitInfo):
    """split.json: the split and the dataset spec it was made with."""

    KIND = "split record"
    spec: dict[str, Any]

    def info(self) -> SplitInfo:
        """The split without its spec (a comparison's `split`)."""
        return SplitInfo.model_validate(self.model_dump(exclude={"spec"}))


class FairnessGroup(ReportModel):
    group: str
    n: int
    approval_rate: float
    counted: bool


class FairnessAttribute(ReportModel):
    """A protected attribute's groups and the lowest/highest approval-rate ratio."""

    groups: list[FairnessGroup]
    ratio: float | None
    passed: bool


class Fairness(ReportModel):
    """Approval (Low risk) rates per group of each protected attribute."""

    min_ratio: float
    min_group_size: int
    attributes: dict[str, FairnessAttribute]
    passed: bool


class GateLimits(ReportModel):
    """The approval gate's thresholds (the settings', overridden by the spec's `gate`)."""

    min_roc_auc: float
    max_ece: float
    min_approval_ratio: float
    champion_margin: float


class ReliabilityRow(ReportModel):
    bin: str
    n: int
    mean_pd: float
    default_rate: float


class Reliability(ReportModel):
    calibrated: list[ReliabilityRow]
    uncalibrated: list[ReliabilityRow]


class Comparison(ReportModel):
    """comparison.json: the candidates and the champion on one test set; the gate's decision."""

    KIND = "comparison report"
    dataset: str
    data_fingerprint: str
    test_rows: int
    split: SplitInfo
    candidates: list[CandidateResult] = Field(min_length=1)
    selected: str
    champion: Champion | None
    fairness: Fairness
    gate: GateLimits
    reliability: Reliability
    approved: bool
    rejection_reasons: list[str]
    policy: DecisionPolicy | None = None  # the threshold's operating point and curve
    alternatives: AlternativeSearch | None = None  # the less discriminatory alternative search

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.selected not in {c.model for c in self.candidates}:
            raise ValueError(f"selected: {self.selected!r} is not one of the candidates")
        if self.approved == bool(self.rejection_reasons):
            raise ValueError("approved: contradicts rejection_reasons")
        return self

    @property
    def selected_candidate(self) -> CandidateResult:
        """The candidate the gate judged (the best by cross-validated ROC-AUC, or the less
        discriminatory alternative that replaced it)."""
        return next(c for c in self.candidates if c.model == self.selected)


# -- drift ---------------------------------------------------------------------------------

class FieldPsi(ReportModel):
    field: str
    psi: float


class DriftReport(ReportModel):
    """drift.json: recent traffic against the champion's reference sample. Without a champion,
    reference or enough traffic, `status` says why and the figures are left out."""

    KIND = "drift report"
    run_id: str
    at: str
    psi_threshold: float
    drift: bool
    status: str
    champion: str | None = None
    dataset: str | None = None
    reference_rows: int | None = None
    current_rows: int | None = None
    window_days: int | None = None
    drifted_fields: list[str] = []
    psi: list[FieldPsi] = []
    psi_rows: int | None = None
    evidently_sample_rows: int | None = None
    evidently: Any = None  # Evidently's drifted-column count and share, as it reports them
    report: str | None = None  # the Evidently report's file name
    plot: str | None = None


# -- performance ---------------------------------------------------------------------------

class Thresholds(ReportModel):
    """When a group of matured loans is judged and when it alerts (the `performance_*`
    settings)."""

    months_on_book: int = 12
    min_loans: int = 500
    min_defaults: int = 30
    max_roc_auc_drop: float = 0.05
    max_ks_drop: float = 0.10
    max_calibration_gap: float = 0.02
    calibration_z: float = 3.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(**{name: getattr(settings.monitoring, f"performance_{name}")
                      for name in cls.model_fields})


class BandFigures(ReportModel):
    rating: str
    n: int
    defaults: int
    default_rate: float | None
    mean_pd: float | None


class GroupFigures(ReportModel):
    """The figures of one group of matured loans (None where one class is missing)."""

    n: int
    defaults: int
    default_rate: float
    mean_pd: float
    calibration_gap: float  # observed minus predicted
    calibration_z: float | None
    roc_auc: float | None
    gini: float | None
    ks: float | None
    pr_auc: float | None
    brier: float | None
    bands: list[BandFigures]


class PerformanceAlert(ReportModel):
    """A figure beyond its limit, for a version (`vintage` None) or one of its vintages."""

    model_version: str
    vintage: str | None
    metric: str
    value: float
    training: float
    limit: float
    message: str


class VintageFigures(GroupFigures):
    vintage: str
    alerts: list[PerformanceAlert]


class TrainingFigures(ReportModel):
    """A version's figures at training time (its manifest's test metrics)."""

    roc_auc: float | None
    ks: float | None
    brier: float | None
    default_rate: float | None


class VersionFigures(GroupFigures):
    model_version: str
    training: TrainingFigures
    alerts: list[PerformanceAlert]
    vintages: list[VintageFigures]


class PerformanceFigures(ReportModel):
    """Figures and alerts per model version and per vintage (performance_report)."""

    KIND = "performance report"
    as_of: str
    thresholds: Thresholds
    matured_with_outcome: int
    matured_without_outcome: int
    versions: list[VersionFigures]
    alerts: list[PerformanceAlert]
    alert: bool


class PerformanceReport(ReportModel):
    """performance.json: a monitoring run's performance on matured loans. Without a decision
    log, `status` says so and the figures are left out."""

    KIND = "performance report"
    run_id: str
    at: str
    decided_since: str
    decided_until: str
    alert: bool
    alerts: list[PerformanceAlert]
    versions: list[VersionFigures]
    status: str
    decisions_log: str | None = None
    outcomes: str | None = None
    as_of: str | None = None
    thresholds: Thresholds | None = None
    matured_with_outcome: int | None = None
    matured_without_outcome: int | None = None
    decisions: int | None = None
    outcomes_read: int | None = None
    plot: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.alert != bool(self.alerts):
            raise ValueError("alert: contradicts alerts")
        return self
