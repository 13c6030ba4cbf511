"""DAG files import cleanly, carry tags and retries, and do no heavy work at import time."""

import ast
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


DAG_FILES = [*sorted(DAGS.glob("credit_risk_*.py")),
             *sorted((DAGS.parent / "benchmarks" / "distributed").glob("credit_risk_*.py"))]


def _task_bodies(path):
    """(name, statements without the docstring) of every @task function of a DAG file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and any(
                "task" in ast.unparse(d).split("(")[0].split(".") for d in node.decorator_list):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            yield node.name, body


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_task_bodies_only_call_into_the_library(path):
    """Each @task reads what Airflow gives it and returns a call (or its input): no logic."""
    bodies = dict(_task_bodies(path))
    assert len(bodies) >= 8, bodies.keys()
    for name, body in bodies.items():
        assert isinstance(body[-1], ast.Return), name
        assert len(body) <= 3, name
        for statement in body:
            assert isinstance(statement, ast.Return | ast.Assign | ast.ImportFrom), name
            assert not any(isinstance(n, ast.For | ast.While | ast.If | ast.Try | ast.With)
                           for n in ast.walk(statement)), name
