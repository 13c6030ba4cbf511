"""End to end: a bad batch fails the DAG's validate task; nothing is trained or published."""

import subprocess
import sys

import pytest

from credit_risk.datasets import synthetic
from tests.conftest import small_settings
from tests.dags.bundle import get_dag

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True)


def test_bad_batch_stops_the_dag_before_training(airflow_db, tables, tmp_path, monkeypatch,
                                                 capfd):
    settings = small_settings(tmp_path)
    for key, value in {"DATA_DIR": settings.data.dir, "RUNS_DIR": settings.data.runs_dir,
                       "REGISTRY_URL": settings.registry.url, "N_CUSTOMERS": 3000,
                       "SEARCH_ITERATIONS": 1, "DECISION_LOG": tmp_path / "d.jsonl"}.items():
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(value))
    bad = {name: df.copy() for name, df in tables.items()}
    bad["bureau"].loc[8, "credit_utilization_ratio"] = 150
    synthetic.write(bad, settings.data.dir / "lauki_synthetic")

    dag = get_dag("credit_risk_training")
    dr = dag.test(run_conf={"models": ["logistic_regression"]})
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert dr.state == "failed", states
    assert states["ingest"] == "success" and states["validate"] == "failed"
    validate = next(ti for ti in dr.get_task_instances() if ti.task_id == "validate")
    assert validate.try_number == 1  # bad data fails at once, the DAG's retries unused
    for task in ("prepare", "train", "compare", "publish"):
        assert states[task] != "success", states

    from credit_risk.registry import Registry
    from credit_risk.validation.result import ValidationResult

    assert Registry(settings.registry.url).versions() == []
    [result_path] = settings.data.runs_dir.glob("*/validation/validation.json")
    result = ValidationResult.read(result_path)
    assert [f.id for f in result.blocking_failures] == [
        "bureau.credit_utilization_ratio.range"]
    assert (result_path.parent / "data_docs" / "index.html").is_file()
    assert not (result_path.parent.parent / "split").exists()
    # The task log (here: the process output) names the expectation, column and example.
    logged = "".join(capfd.readouterr())
    assert ("bureau.credit_utilization_ratio: expected values between 0 and 100; 1 of 3,000 "
            "values fail (0.03%), e.g. 150") in logged, logged[-3000:]
