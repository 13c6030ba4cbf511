"""The DAGs' task bodies (credit_risk.pipeline.tasks) without Airflow: what a task reads of
its params and upstream results, and what it hands on."""

import json
import subprocess
import sys

import pytest

from credit_risk.config import Settings
from credit_risk.errors import CreditRiskError
from credit_risk.pipeline import steps, tasks
from credit_risk.pipeline.run_reports import DriftReport, PerformanceReport


def test_the_module_loads_no_training_or_monitoring_library():
    code = ("import sys; import credit_risk.pipeline.tasks; heavy = {'pandas', 'numpy', "
            "'sklearn', 'xgboost', 'joblib', 'great_expectations', 'evidently'} & "
            "set(sys.modules); assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_candidates_are_the_params_models():
    assert tasks.candidates({"models": ("xgboost", "logistic_regression")}) == [
        "xgboost", "logistic_regression"]


@pytest.mark.parametrize("drift,alert", [(True, False), (False, True)])
def test_the_monitoring_flags_come_from_the_result_files(tmp_path, drift, alert):
    drift_file, performance_file = tmp_path / "drift.json", tmp_path / "performance.json"
    at = "2026-12-01T00:00:00+00:00"
    drift_file.write_text(DriftReport(run_id="r", at=at, psi_threshold=0.25, drift=drift,
                                      status="checked").dumps())
    alerts = [{"model_version": "v1", "vintage": None, "metric": "ks", "value": 0.2,
               "training": 0.4, "limit": 0.1, "message": "ks dropped"}] if alert else []
    performance_file.write_text(PerformanceReport(
        run_id="r", at=at, decided_since=at, decided_until=at, alert=alert, alerts=alerts,
        versions=[], status="ok").dumps())
    assert tasks.drifted(str(drift_file)) is drift
    assert tasks.performance_alert(str(performance_file)) is alert


def test_a_hand_edited_result_file_fails_the_task_naming_the_field(tmp_path):
    drift_file = tmp_path / "drift.json"
    drift_file.write_text(json.dumps({"run_id": "r", "at": "now", "psi_threshold": 0.25,
                                      "drift": "maybe", "status": "ok"}))
    with pytest.raises(CreditRiskError, match=r"drift\.json: not a valid drift report: drift"):
        tasks.drifted(str(drift_file))
    with pytest.raises(CreditRiskError, match="no such performance report"):
        tasks.performance_alert(str(tmp_path / "performance.json"))


def test_a_forced_run_trains_without_asking_the_registry(monkeypatch, tmp_path):
    def refuse(*args):
        raise AssertionError("the champion was consulted")

    monkeypatch.setattr(steps, "data_changed_since_champion", refuse)
    settings = Settings(registry_url=str(tmp_path))
    assert tasks.data_changed(settings, "snapshot.json", {"force": True})


def test_the_dataset_spec_param_reaches_the_step(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(steps, "ingest_step", lambda *args: calls.append(args) or "snap")
    settings = Settings(runs_dir=tmp_path)
    assert tasks.ingest(settings, "run-1", {"dataset_spec": "german_credit"}) == "snap"
    assert tasks.ingest(settings, "run-2", {}) == "snap"
    assert calls == [(settings, "run-1", "german_credit"), (settings, "run-2", None)]
