"""A small site for the pages: a registry of two versions and a few run folders, no training."""

import json
from pathlib import Path

import pytest

from credit_risk.config import Settings
from credit_risk.pipeline.run_reports import DriftReport, PerformanceReport
from credit_risk.registry import Registry

FIELDS = {"model": "lr", "metrics": {"roc_auc": 0.9, "ece": 0.01}, "status": "approved"}
AT = "2026-12-01T00:00:00+00:00"


def drift_report(**fields) -> dict:
    """A valid drift.json (a run without a champion), with `fields` over it."""
    base = {"run_id": "daily-1", "at": AT, "psi_threshold": 0.25, "drift": False,
            "status": "no champion"}
    return DriftReport.model_validate({**base, **fields}).to_dict()


def figures(**fields) -> dict:
    """A group's figures in a performance report, with `fields` over them."""
    base = {"n": 10, "defaults": 1, "default_rate": 0.1, "mean_pd": 0.1,
            "calibration_gap": 0.0, "calibration_z": 0.0, "roc_auc": 0.8, "gini": 0.6,
            "ks": 0.4, "pr_auc": 0.3, "brier": 0.1, "bands": []}
    return {**base, **fields}


def performance_report(**fields) -> dict:
    """A valid performance.json (no versions), with `fields` over it."""
    base = {"run_id": "daily-1", "at": AT, "decided_since": "2025-01-01T00:00:00+00:00",
            "decided_until": "2025-02-01T00:00:00+00:00", "alert": False, "alerts": [],
            "versions": [], "status": "ok"}
    return PerformanceReport.model_validate({**base, **fields}).to_dict()


def write(path: Path, data: str | bytes) -> None:
    """A file with its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def small_site(base: Path, manifest: dict, reason: str, by: str,
               drift: dict, performance: dict) -> tuple[Settings, Registry, str]:
    """Two published versions (the second promoted over the first), a training run with its
    reports, a monitoring run with the given drift and performance reports."""
    registry = Registry(str(base / "registry"))
    files = {"model_card.html": b"<html><body>Model card</body></html>"}
    first, second = (registry.publish(files, {**FIELDS, **manifest}) for _ in range(2))
    registry.promote(first, reason, by=by)
    registry.promote(second, reason, by=by)
    runs = base / "runs"
    write(runs / "run-1" / "comparison.json", json.dumps({"selected": "lr"}))
    write(runs / "run-1" / "validation" / "data_docs" / "index.html", "<html>Data Docs</html>")
    daily = runs / "monitoring" / "daily-1"
    write(daily / "drift.json", json.dumps(drift))
    write(daily / "drift_report.html", "<html><body>Evidently</body></html>")
    write(daily / "performance.json", json.dumps(performance))
    return Settings(registry_url=str(base / "registry"), runs_dir=runs), registry, second


@pytest.fixture
def site(tmp_path):
    """The small site with plain contents."""
    drift = drift_report(status="ok", report="drift_report.html",
                         psi=[{"field": "income", "psi": 0.01}])
    performance = performance_report()
    return small_site(tmp_path, {"dataset": "lauki"}, "first", "ml-engineer", drift, performance)
