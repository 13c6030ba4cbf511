"""The simulation's DAG (benchmarks/distributed/): it parses as a bundle beside dags/, and one
model's search is the mapped trial tasks between plan and finish."""

import sys

import pytest

from tests.dags.bundle import DAGS

TRIALS = DAGS.parent / "benchmarks" / "distributed"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import BundleDagBag

    sys.path.insert(0, str(DAGS))  # task_errors, as the benchmark's PYTHONPATH gives it
    try:
        bag = BundleDagBag(dag_folder=str(TRIALS), bundle_path=TRIALS)
    finally:
        sys.path.remove(str(DAGS))
    assert bag.import_errors == {}
    return bag.dags["credit_risk_training_trials"]


def test_the_search_is_mapped_trial_tasks_between_plan_and_finish(dag):
    task = dag.get_task
    assert task("prepare").upstream_task_ids >= {"data_changed"}
    assert task("plan").upstream_task_ids == {"prepare", "candidates"}
    assert task("all_trials").upstream_task_ids == {"plan"}
    assert task("trial").upstream_task_ids == {"prepare", "all_trials"}
    assert task("finish").upstream_task_ids == {"prepare", "candidates", "trial"}
    assert task("compare").upstream_task_ids == {"prepare", "finish"}
    assert task("publish").upstream_task_ids == {"compare"}
    assert "train" not in dag.task_ids
    for name in ("plan", "trial", "finish"):
        assert task(name).is_mapped, name
    for t in dag.tasks:
        assert t.retries >= 1 and getattr(t.python_callable, "fails_fast", False), t.task_id
    assert dag.params["trial_threads"] == 1
