"""What the run and monitoring pages show, read from the run folders as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from credit_risk.pipeline.run_paths import MONITORING
from credit_risk.pipeline.run_reports import DriftReport, PerformanceReport, ReportError

from .files import (
    COMPARISON,
    DATA_DOCS_INDEX,
    RELIABILITY,
    VALIDATION_RESULT,
    NotServed,
    RunsFolder,
    is_report,
)

DRIFT, PERFORMANCE = "drift.json", "performance.json"
RUNS_SHOWN = 50
MONITORING_SHOWN = 20
OUTPUTS = (COMPARISON, RELIABILITY, VALIDATION_RESULT, DATA_DOCS_INDEX)


@dataclass(frozen=True)
class Drift:
    """A drift report: status, PSI per field, whether the Evidently report exists."""

    status: str
    drift: bool
    drifted_fields: list[str]
    psi: list[tuple[str, float]]
    has_report: bool


@dataclass(frozen=True)
class Performance:
    """Performance on matured loans: one row per version and vintage, and the alerts."""

    status: str
    alert: bool
    since: str
    until: str
    rows: list[tuple[Any, ...]]
    alerts: list[tuple[str, str, str]]


@dataclass(frozen=True)
class MonitoringRun:
    """One monitoring run; `unreadable` names the reports that could not be read."""

    name: str
    drift: Drift | None
    performance: Performance | None
    images: set[str] = field(default_factory=set)
    unreadable: set[str] = field(default_factory=set)


def training_runs(folder: RunsFolder) -> list[tuple[str, list[str]]]:
    """(run, its report paths) of the newest training runs."""
    names = [name for name, _ in folder.folders() if name != MONITORING][:RUNS_SHOWN]
    return [(name, run_outputs(folder, name)) for name in names]


def run_outputs(folder: RunsFolder, run: str) -> list[str]:
    """The reports a run has: comparison, reliability plot, validation, Data Docs."""
    return [path for path in OUTPUTS
            if is_report(run, path) and folder.is_file(run, *path.split("/"))]


def _read(folder: RunsFolder, run: str, name: str) -> bytes | None:
    """A monitoring report's bytes, or None when absent or not servable."""
    if not is_report(MONITORING, f"{run}/{name}"):
        return None
    try:
        return folder.read(MONITORING, run, name)
    except (NotServed, OSError):
        return None


def drift(r: DriftReport) -> Drift:
    """A drift report as shown."""
    return Drift(r.status, r.drift, r.drifted_fields, [(p.field, p.psi) for p in r.psi],
                 bool(r.report))


def performance(r: PerformanceReport) -> Performance:
    """A performance report as shown: a row per version and per vintage of each."""
    rows: list[tuple[Any, ...]] = []
    for v in r.versions:
        for vintage, x in [("all", v), *((x.vintage, x) for x in v.vintages)]:
            rows.append((v.model_version, vintage, x.n, x.defaults, x.roc_auc,
                         v.training.roc_auc, x.ks, x.brier, x.mean_pd, x.default_rate))
    alerts = [(a.model_version, a.vintage or "all", a.message) for a in r.alerts]
    return Performance(r.status, r.alert, r.decided_since[:10], r.decided_until[:10], rows,
                       alerts)


def monitoring_run(folder: RunsFolder, run: str) -> MonitoringRun | None:
    """One monitoring run's reports, or None when it has neither drift nor performance."""
    drift_raw, performance_raw = (_read(folder, run, n) for n in (DRIFT, PERFORMANCE))
    if drift_raw is None and performance_raw is None:
        return None
    unreadable = set()
    shown_drift = shown_performance = None
    try:
        if drift_raw is not None:
            shown_drift = drift(DriftReport.loads(drift_raw, f"{run}/{DRIFT}"))
    except ReportError:
        unreadable.add(DRIFT)
    try:
        if performance_raw is not None:
            shown_performance = performance(
                PerformanceReport.loads(performance_raw, f"{run}/{PERFORMANCE}"))
    except ReportError:
        unreadable.add(PERFORMANCE)
    images = {n for n in ("psi.png", "performance.png")
              if is_report(MONITORING, f"{run}/{n}") and folder.is_file(MONITORING, run, n)}
    return MonitoringRun(run, shown_drift, shown_performance, images, unreadable)


def monitoring_runs(folder: RunsFolder) -> list[MonitoringRun]:
    """The newest monitoring runs that have a drift or a performance report."""
    names = [name for name, _ in folder.folders(MONITORING)[:MONITORING_SHOWN]]
    return [run for name in names if (run := monitoring_run(folder, name)) is not None]
