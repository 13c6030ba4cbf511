"""The DAGs' task bodies: what each Airflow task does, as plain functions.

Each takes the settings and what Airflow hands the task (the run id, the DAG's params, the
paths upstream tasks returned through XCom) and returns a path, an id or a flag. The DAG files
(dags/) and the distributed benchmark's DAG (benchmarks/distributed/) wrap these in one-line
`@task`s; nothing here imports Airflow. Each body imports its step when it runs, so that a
monitoring task never loads the training libraries and a DAG file parses without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from credit_risk.config import Settings

# The training DAG's params: "dataset_spec" (None: the settings'), "models", "force".
Params = Mapping[str, Any]


# -- training -----------------------------------------------------------------------------

def ingest(settings: Settings, run_id: str, params: Params) -> str:
    """Snapshot the source tables for this run; the snapshot manifest's path."""
    from credit_risk.pipeline import steps

    return steps.ingest_step(settings, run_id, params.get("dataset_spec"))


def validate(settings: Settings, snapshot: str, params: Params) -> str:
    """The Great Expectations gate on the snapshot; raises on a blocking failure."""
    from credit_risk.pipeline import steps

    return steps.validate_step(settings, snapshot, params.get("dataset_spec"))


def data_changed(settings: Settings, snapshot: str, params: Params) -> bool:
    """Whether to train: forced, or the champion was not trained on exactly this data."""
    from credit_risk.pipeline import steps

    return bool(params.get("force")) or steps.data_changed_since_champion(settings, snapshot)


def prepare(settings: Settings, snapshot: str, params: Params) -> str:
    """Join and split once; the folder holding the train and test parts."""
    from credit_risk.pipeline import steps

    return steps.prepare_step(settings, snapshot, params.get("dataset_spec"))


def candidates(params: Params) -> list[str]:
    """The candidate models to train (the params' subset)."""
    return list(params["models"])


def train(settings: Settings, split_dir: str, model_name: str) -> str:
    """One candidate tuned, fitted and calibrated; its file."""
    from credit_risk.pipeline import steps

    return steps.train_step(settings, split_dir, model_name)


def compare(settings: Settings, split_dir: str, candidate_paths: list[str]) -> str:
    """Every candidate and the champion on the test set, and the gate; the comparison's path."""
    from credit_risk.pipeline import steps

    return steps.evaluate_step(settings, split_dir, list(candidate_paths))


def publish(settings: Settings, comparison: str) -> str:
    """The selected candidate published (and promoted if approved); its version id."""
    from credit_risk.pipeline import steps

    return steps.publish_step(settings, comparison)


# -- monitoring ---------------------------------------------------------------------------

def drift_report(settings: Settings, run_id: str) -> str:
    """Recent traffic against the champion's reference sample; the drift result's path."""
    from credit_risk.pipeline import monitoring

    return monitoring.drift_step(settings, run_id)


def load_outcomes(settings: Settings) -> dict[str, Any]:
    """New observed outcomes loaded from the configured source (idempotent)."""
    from credit_risk.pipeline import monitoring

    return monitoring.load_outcomes_step(settings)


def performance_report(settings: Settings, run_id: str) -> str:
    """Matured decisions against their outcomes; the performance result's path."""
    from credit_risk.pipeline import monitoring

    return monitoring.performance_step(settings, run_id)


def prune_decisions(settings: Settings) -> dict[str, Any]:
    """The decision log's retention enforced; what was removed."""
    from credit_risk.records.backends import prune_decisions as prune

    return prune(settings)


def drifted(result: str) -> bool:
    """Whether a drift result (drift.json) reports drift over the threshold."""
    from credit_risk.pipeline.run_reports import DriftReport, read_report

    return read_report(DriftReport, result).drift


def performance_alert(result: str) -> bool:
    """Whether a performance result (performance.json) raises an alert."""
    from credit_risk.pipeline.run_reports import PerformanceReport, read_report

    return read_report(PerformanceReport, result).alert
