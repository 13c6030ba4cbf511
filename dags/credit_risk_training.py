"""Retraining of the credit-risk model, weekly and on drift (orchestration only: the task
bodies are `credit_risk.pipeline.tasks`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)
from task_errors import fails_fast, settings

from credit_risk.config import DEFAULT_MODELS, MODELS
from credit_risk.pipeline import tasks

DRIFT = Asset("credit_risk_drift")  # emitted by credit_risk_monitoring


@dag(
    dag_id="credit_risk_training",
    # Weekly (Sunday 00:00 UTC), and whenever the monitoring DAG reports drift.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 * * 0", timezone="UTC"), assets=[DRIFT]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["credit-risk", "training"],
    # Retries for what may pass (I/O, the network); errors that a retry cannot fix (bad data,
    # spec or settings, a refused artifact) fail a task at once: `fails_fast`.
    default_args={"owner": "ml-engineering", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "dataset_spec": Param(None, type=["null", "string"],
                              description="built-in spec name or YAML path (default: settings)"),
        "models": Param(list(DEFAULT_MODELS), type="array", minItems=1, uniqueItems=True,
                        items={"type": "string", "enum": list(MODELS)},
                        description="subset of candidate models"),
        "force": Param(False, type="boolean",
                       description="retrain even if the data did not change since the champion"),
    },
    doc_md=__doc__,
)
def credit_risk_training():
    @task
    @fails_fast
    def ingest() -> str:
        ctx = get_current_context()
        return tasks.ingest(settings(), ctx["run_id"], ctx["params"])

    @task
    @fails_fast
    def validate(snapshot: str) -> str:
        """Great Expectations gate: a blocking failure fails this task and stops the run."""
        return tasks.validate(settings(), snapshot, get_current_context()["params"])

    @task.short_circuit
    @fails_fast
    def data_changed(snapshot: str) -> bool:
        """Skip training when the champion was trained on exactly this data (unless forced)."""
        return tasks.data_changed(settings(), snapshot, get_current_context()["params"])

    @task
    @fails_fast
    def prepare(snapshot: str) -> str:
        return tasks.prepare(settings(), snapshot, get_current_context()["params"])

    @task
    @fails_fast
    def candidates() -> list[str]:
        return tasks.candidates(get_current_context()["params"])

    @task
    @fails_fast
    def train(split_dir: str, model_name: str) -> str:
        return tasks.train(settings(), split_dir, model_name)

    @task
    @fails_fast
    def compare(split_dir: str, paths: list[str]) -> str:
        return tasks.compare(settings(), split_dir, paths)

    @task
    @fails_fast
    def publish(comparison: str) -> str:
        return tasks.publish(settings(), comparison)

    snapshot = ingest()
    split_dir = prepare(snapshot)
    validate(snapshot) >> data_changed(snapshot) >> split_dir
    trained = train.partial(split_dir=split_dir).expand(model_name=candidates())
    publish(compare(split_dir, trained))


credit_risk_training()
