"""DAG files import cleanly, carry tags and retries, and do no heavy work at import time."""

import subprocess
import sys

import pytest

from tests.dags.bundle import DAGS, dag_bag


@pytest.fixture(scope="module")
def dagbag():
    return dag_bag()


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "credit_risk_training" in dagbag.dag_ids


def test_tags_retries_and_schedule(dagbag):
    for dag_id in dagbag.dag_ids:
        dag = dagbag.dags[dag_id]
        assert "credit-risk" in dag.tags
        for task in dag.tasks:  # bad data fails at once all the same (test_task_errors)
            assert task.retries >= 1, task.task_id
    training = dagbag.dags["credit_risk_training"]
    assert training.get_task("prepare").upstream_task_ids >= {"data_changed"}
    assert "validate" in training.get_task("data_changed").upstream_task_ids
    assert training.catchup is False
    assert set(training.params.keys()) == {"dataset_spec", "models", "force"}


def test_dag_files_import_without_heavy_libraries():
    code = ("import sys, runpy; sys.path.append(sys.argv[2]); runpy.run_path(sys.argv[1]); "
            "heavy = {'pandas', 'sklearn', 'xgboost', 'great_expectations', 'evidently'} "
            "& set(sys.modules); print(sorted(heavy)); assert not heavy")
    for path in DAGS.glob("*.py"):
        result = subprocess.run([sys.executable, "-c", code, str(path), str(DAGS)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_airflow_rules_pass():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "AIR", str(DAGS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
