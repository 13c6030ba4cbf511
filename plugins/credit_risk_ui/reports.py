"""What the run and monitoring pages show, read from the run folders as plain data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from credit_risk.pipeline.run_paths import MONITORING

from .files import (
    COMPARISON,
    DATA_DOCS_INDEX,
    RELIABILITY,
    VALIDATION_RESULT,
    NotServed,
    RunsFolder,
    is_report,
)

RUNS_SHOWN = 50
MONITORING_SHOWN = 20
OUTPUTS = (COMPARISON, RELIABILITY, VALIDATION_RESULT, DATA_DOCS_INDEX)


@dataclass(frozen=True)
class Drift:
    """A drift report: status, PSI per field, whether the Evidently report exists."""

    status: Any
    drift: Any
    drifted_fields: list[str]
    psi: list[tuple[Any, float]]
    has_report: bool


@dataclass(frozen=True)
class Performance:
    """Performance on matured loans: one row per version and vintage, and the alerts."""

    status: Any
    alert: bool
    since: str
    until: str
    rows: list[tuple[Any, ...]]
    alerts: list[tuple[Any, Any, Any]]


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


def _read_json(folder: RunsFolder, run: str, name: str) -> dict[str, Any] | None:
    """A monitoring report's JSON object, or None when absent or not servable."""
    if not is_report(MONITORING, f"{run}/{name}"):
        return None
    try:
        data = json.loads(folder.read(MONITORING, run, name))
    except (NotServed, ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def drift(r: dict[str, Any]) -> Drift:
    """A drift.json as shown; KeyError, TypeError or ValueError when malformed."""
    psi = [(p["field"], float(p["psi"])) for p in r.get("psi") or []]
    fields = [str(f) for f in r.get("drifted_fields") or []]
    return Drift(r["status"], r["drift"], fields, psi, bool(r.get("report")))


def performance(r: dict[str, Any]) -> Performance:
    """A performance.json as shown; KeyError, TypeError or ValueError when malformed."""
    rows = []
    for v in r.get("versions") or []:
        at_training = (v.get("training") or {}).get("roc_auc")
        for x in [v, *v.get("vintages", [])]:
            rows.append((v["model_version"], x.get("vintage", "all"), x["n"], x["defaults"],
                         x["roc_auc"], at_training, x["ks"], x["brier"], x["mean_pd"],
                         x["default_rate"]))
    alerts = [(a["model_version"], a.get("vintage") or "all", a["message"])
              for a in r.get("alerts") or []]
    return Performance(r["status"], bool(r["alert"]), str(r.get("decided_since", ""))[:10],
                       str(r.get("decided_until", ""))[:10], rows, alerts)


def monitoring_run(folder: RunsFolder, run: str) -> MonitoringRun | None:
    """One monitoring run's reports, or None when it has neither drift nor performance."""
    raw = {name: _read_json(folder, run, name) for name in ("drift.json", "performance.json")}
    if all(data is None for data in raw.values()):
        return None
    parsed: dict[str, Any] = {}
    unreadable = set()
    for (name, data), parse in zip(raw.items(), (drift, performance), strict=True):
        parsed[name] = None
        try:
            parsed[name] = parse(data) if data is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            unreadable.add(name)
    images = {n for n in ("psi.png", "performance.png")
              if is_report(MONITORING, f"{run}/{n}") and folder.is_file(MONITORING, run, n)}
    return MonitoringRun(run, parsed["drift.json"], parsed["performance.json"], images,
                         unreadable)


def monitoring_runs(folder: RunsFolder) -> list[MonitoringRun]:
    """The newest monitoring runs that have a drift or a performance report."""
    names = [name for name, _ in folder.folders(MONITORING)[:MONITORING_SHOWN]]
    return [run for name in names if (run := monitoring_run(folder, name)) is not None]
