"""A small site for the pages: a registry of two versions and a few run folders, no training."""

import json
from pathlib import Path

import pytest

from credit_risk.config import Settings
from credit_risk.registry.store import Registry

FIELDS = {"model": "lr", "metrics": {"roc_auc": 0.9, "ece": 0.01}, "status": "approved"}


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
    drift = {"status": "ok", "drift": False, "report": True,
             "psi": [{"field": "income", "psi": 0.01}]}
    performance = {"status": "ok", "alert": False, "versions": [], "alerts": []}
    return small_site(tmp_path, {"dataset": "lauki"}, "first", "ml-engineer", drift, performance)
