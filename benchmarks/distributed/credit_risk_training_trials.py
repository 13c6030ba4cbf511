"""The training DAG with each candidate's search split into mapped trial tasks (orchestration
only: the training DAG's task bodies, `credit_risk.pipeline.tasks`, and the trial pieces,
`benchmarks.distributed.trial_tasks`).

The steps of `credit_risk_training` (dags/), with `train[model]` replaced by
`plan[model]` (folds prepared once, trials drawn) -> `trial[model, n]` (one task per trial, on
any worker) -> `finish[model]` (best trial refitted, calibrated, thresholded: the same
candidate file), so that the trials of one model spread over the Celery workers. One rung of
random search over all training rows. The simulation of docs/scaling.md runs it:
benchmarks/bench_distributed.py. Its bundle folder needs `dags/` (`task_errors`) and the
repository's root (`benchmarks`) on PYTHONPATH.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from task_errors import fails_fast, settings

from credit_risk.config import DEFAULT_MODELS
from credit_risk.pipeline import tasks

MODELS = [m for m in DEFAULT_MODELS if m != "scorecard"]  # its search is not split into trials


@dag(
    dag_id="credit_risk_training_trials",
    schedule=None,  # triggered by hand (the benchmark)
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["credit-risk", "training", "benchmark"],
    default_args={"owner": "ml-engineering", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "dataset_spec": Param(None, type=["null", "string"],
                              description="built-in spec name or YAML path (default: settings)"),
        "models": Param(MODELS, type="array", minItems=1, uniqueItems=True,
                        items={"type": "string", "enum": MODELS},
                        description="subset of candidate models"),
        "force": Param(False, type="boolean",
                       description="retrain even if the data did not change since the champion"),
        "trial_threads": Param(1, type="integer", minimum=1,
                               description="threads of one trial's model (worker concurrency x "
                                           "this = the worker's cores)"),
    },
    doc_md=__doc__,
)
def credit_risk_training_trials():
    @task
    @fails_fast
    def ingest() -> str:
        ctx = get_current_context()
        return tasks.ingest(settings(), ctx["run_id"], ctx["params"])

    @task
    @fails_fast
    def validate(snapshot: str) -> str:
        return tasks.validate(settings(), snapshot, get_current_context()["params"])

    @task.short_circuit
    @fails_fast
    def data_changed(snapshot: str) -> bool:
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
    def plan(split_dir: str, model_name: str) -> list[dict]:
        from benchmarks.distributed import trial_tasks

        return [{"model_name": model_name, "number": n}
                for n in trial_tasks.plan(settings(), split_dir, model_name)]

    @task
    @fails_fast
    def all_trials(plans: list[list[dict]]) -> list[dict]:
        return [t for planned in plans for t in planned]

    @task
    @fails_fast
    def trial(split_dir: str, model_name: str, number: int) -> str:
        from benchmarks.distributed import trial_tasks

        threads = int(get_current_context()["params"]["trial_threads"])
        return trial_tasks.trial(split_dir, model_name, number, threads)

    @task
    @fails_fast
    def finish(split_dir: str, model_name: str) -> str:
        from benchmarks.distributed import trial_tasks

        return trial_tasks.finish(split_dir, model_name)

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
    models = candidates()
    plans = plan.partial(split_dir=split_dir).expand(model_name=models)
    trials = trial.partial(split_dir=split_dir).expand_kwargs(all_trials(plans))
    finished = finish.partial(split_dir=split_dir).expand(model_name=models)
    trials >> finished
    publish(compare(split_dir, finished))


credit_risk_training_trials()
