"""End to end: the monitoring DAG finds drift in logged traffic and emits the drift Asset."""

import shutil
import subprocess
import sys

import pytest

from tests.dags.bundle import get_dag
from tests.model.test_monitoring import _log_traffic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   capture_output=True)


def _setup(trained, tmp_path, monkeypatch):
    settings, _ = trained
    shutil.copytree(settings.registry.url, tmp_path / "reg")
    settings = settings.model_copy(update={"registry_url": str(tmp_path / "reg"),
                                           "runs_dir": tmp_path / "runs",
                                           "decision_log": tmp_path / "decisions.jsonl"})
    for key, value in {"REGISTRY_URL": settings.registry.url, "RUNS_DIR": settings.data.runs_dir,
                       "DECISION_LOG": settings.decisions.url}.items():
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(value))
    return settings


def _drift_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).select_from(AssetEvent).join(
            AssetModel, AssetEvent.asset_id == AssetModel.id).where(
            AssetModel.name == "credit_risk_drift"))


def _run():
    dag = get_dag("credit_risk_monitoring")
    dr = dag.test()
    return dr, {ti.task_id: ti.state for ti in dr.get_task_instances()}


@pytest.mark.parametrize("shift,emitted", [(True, "success"), (False, "skipped")])
def test_monitoring_dag(airflow_db, trained, tmp_path, monkeypatch, shift, emitted):
    settings = _setup(trained, tmp_path, monkeypatch)
    _log_traffic(settings, shift=shift)
    before = _drift_events()
    dr, states = _run()
    assert dr.state == "success", states
    assert states["drift_report"] == "success"
    assert states["emit_drift"] == emitted
    assert _drift_events() == before + (1 if shift else 0)
