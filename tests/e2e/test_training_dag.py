"""End to end: the real training DAG with dag.test() on a small dataset, then the Flask app."""

import subprocess
import sys

import pytest

from tests.conftest import generate_data, small_settings
from tests.dags.bundle import get_dag

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True)


def _run_dag(conf):
    dag = get_dag("credit_risk_training")
    dr = dag.test(run_conf=conf)
    return dr, {(ti.task_id, ti.map_index): ti.state for ti in dr.get_task_instances()}


def test_training_dag_publishes_a_champion_that_serves(airflow_db, tmp_path, monkeypatch):
    settings = generate_data(small_settings(tmp_path))
    for key, value in {"DATA_DIR": settings.data.dir, "RUNS_DIR": settings.data.runs_dir,
                       "REGISTRY_URL": settings.registry.url, "N_CUSTOMERS": 3000,
                       "SEARCH_ITERATIONS": 1, "DECISION_LOG": tmp_path / "d.jsonl"}.items():
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(value))

    dr, states = _run_dag({"models": ["logistic_regression", "xgboost"]})
    assert dr.state == "success", states
    assert states[("train", 0)] == states[("train", 1)] == "success"
    assert states[("publish", -1)] == "success"

    from credit_risk.registry import Registry
    from serving import create_app

    registry = Registry(settings.registry.url)
    champion = registry.alias_version("champion")
    assert champion and registry.versions() == [champion]
    manifest = registry.verify(champion)
    assert {r["model"] for r in manifest["comparison"]} == {"logistic_regression", "xgboost"}

    client = create_app(settings, watch=False).test_client()
    application = {f["name"]: f["default"] for f in manifest["inputs"]}
    r = client.post("/api/v1/predict", json=application)
    assert r.status_code == 200 and r.json["model_version"] == champion

    # Same data again without force: nothing new is trained or published.
    dr, states = _run_dag({"models": ["logistic_regression"]})
    assert dr.state == "success"
    assert states[("publish", -1)] == "skipped"
    assert registry.versions() == [champion]
