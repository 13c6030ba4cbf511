"""Daily drift check: recent scored traffic vs the champion's training data (PSI + Evidently).

When any application field drifts past the PSI threshold, the `credit_risk_drift` Asset is
emitted, which triggers the training DAG. `load_outcomes` loads new observed outcomes from
CREDIT_RISK_OUTCOMES_CSV or _SQL (idempotent), then `performance_report` judges the matured
decisions against their observed outcomes (CREDIT_RISK_PERFORMANCE_*); an alert emits the same
Asset.
`prune_decisions` enforces the decision log's retention (CREDIT_RISK_DECISION_RETENTION_DAYS;
none set: keeps everything), after both reports have read the log.
Orchestration only: the task bodies are `credit_risk.pipeline.tasks`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, dag, get_current_context, task
from task_errors import fails_fast, settings

from credit_risk.pipeline import tasks

DRIFT = Asset("credit_risk_drift")


@dag(
    dag_id="credit_risk_monitoring",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["credit-risk", "monitoring"],
    # Retries for what may pass; errors that a retry cannot fix fail at once: `fails_fast`.
    default_args={"owner": "ml-engineering", "retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
)
def credit_risk_monitoring():
    @task
    @fails_fast
    def drift_report() -> str:
        return tasks.drift_report(settings(), get_current_context()["run_id"])

    @task.short_circuit
    @fails_fast
    def drifted(result: str) -> bool:
        return tasks.drifted(result)

    @task(outlets=[DRIFT])
    @fails_fast
    def emit_drift(result: str) -> str:
        """Reaching this task emits the drift Asset event (the training DAG listens)."""
        return result

    @task
    @fails_fast
    def load_outcomes() -> dict:
        return tasks.load_outcomes(settings())

    @task
    @fails_fast
    def performance_report() -> str:
        return tasks.performance_report(settings(), get_current_context()["run_id"])

    @task.short_circuit
    @fails_fast
    def performance_alert(result: str) -> bool:
        return tasks.performance_alert(result)

    @task(outlets=[DRIFT])
    @fails_fast
    def emit_performance_alert(result: str) -> str:
        """Reaching this task emits the drift Asset event (the training DAG listens)."""
        return result

    @task(trigger_rule="all_done")  # retention holds even on a day the drift check fails
    @fails_fast
    def prune_decisions() -> dict:
        return tasks.prune_decisions(settings())

    result = drift_report()
    drifted(result) >> emit_drift(result)
    performance = performance_report()
    load_outcomes() >> performance
    performance_alert(performance) >> emit_performance_alert(performance)
    prune = prune_decisions()
    result >> prune
    performance >> prune


credit_risk_monitoring()
