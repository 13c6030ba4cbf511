"""Tasks fail at once on errors a retry cannot fix (CreditRiskError), and keep their retries
on anything else."""

import subprocess
import sys
from datetime import timedelta

import pytest

from credit_risk.errors import CreditRiskError
from credit_risk.validation.report import DataValidationError
from tests.dags.bundle import DAGS, dag_bag


@pytest.fixture
def task_errors(monkeypatch):
    monkeypatch.syspath_prepend(str(DAGS))
    import task_errors

    return task_errors


def test_a_project_error_becomes_a_fail_now_and_others_pass_through(task_errors):
    from airflow.sdk.exceptions import AirflowFailException

    @task_errors.fails_fast
    def bad_data(x):
        raise DataValidationError(f"bureau.credit_utilization_ratio: {x}")

    @task_errors.fails_fast
    def flaky():
        raise OSError("connection reset")

    with pytest.raises(AirflowFailException, match="DataValidationError: bureau.*not retried") \
            as caught:
        bad_data(150)
    assert isinstance(caught.value.__cause__, CreditRiskError)
    with pytest.raises(OSError, match="connection reset"):
        flaky()
    assert task_errors.fails_fast(lambda a, b=2: a + b)(1) == 3


def test_invalid_settings_fail_at_once(task_errors, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("CREDIT_RISK_CV_FOLDS", "many")
    with pytest.raises(AirflowFailException, match="invalid credit-risk settings"):
        task_errors.settings()


def test_every_task_of_every_dag_fails_fast():
    bag = dag_bag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"credit_risk_training", "credit_risk_monitoring"}
    for dag in bag.dags.values():
        for task in dag.tasks:
            assert getattr(task.python_callable, "fails_fast", False), (dag.dag_id, task.task_id)
            assert task.retries >= 1, task.task_id  # retries stay for what may pass


@pytest.fixture(scope="module")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True)


@pytest.mark.parametrize("error,attempts", [(None, 1), (OSError("the disk was busy"), 3)])
def test_in_airflow_a_project_error_is_not_retried_and_another_error_is(
        airflow_db, monkeypatch, error, attempts):
    """The real training DAG under dag.test(): a spec that does not exist (SpecError) fails
    ingest at its first attempt; an OSError is retried as the DAG says (retries=2)."""
    from credit_risk.pipeline import steps

    calls = []
    real = steps.ingest_step

    def ingest_step(*args, **kwargs):
        calls.append(args)
        if error is not None:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "ingest_step", ingest_step)
    dag = dag_bag().get_dag("credit_risk_training")
    for t in dag.tasks:
        t.retry_delay = timedelta(0)  # the DAG's own retries, without the wait
    dr = dag.test(run_conf={"dataset_spec": "no_such_spec"})
    ingest = next(ti for ti in dr.get_task_instances() if ti.task_id == "ingest")
    assert dr.state == "failed" and ingest.state == "failed"
    assert len(calls) == attempts == ingest.try_number
    assert dag.get_task("ingest").retries == 2
