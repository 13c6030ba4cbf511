"""Drift monitoring: PSI, and the drift check on logged traffic vs the champion's training data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit_risk.pipeline import synthetic
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.monitoring import drift_step, psi_categorical, psi_numeric
from credit_risk.pipeline.steps import load_scorer
from credit_risk.registry.decisions import DecisionLog
from credit_risk.spec.dataset import load_spec


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    assert psi_numeric(ref, rng.normal(0, 1, 5000)) < 0.02
    half, one = psi_numeric(ref, rng.normal(0.5, 1, 5000)), psi_numeric(ref, rng.normal(1, 1, 5000))
    assert 0.1 < half < one and one > 0.25


def test_psi_handles_missing_values_and_new_categories():
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    assert psi_categorical(ref, ref.copy()) == pytest.approx(0.0)
    assert psi_categorical(ref, pd.Series(["a"] * 50 + ["c"] * 50)) > 1
    x = np.array([1.0, 2.0, np.nan] * 100)
    assert psi_numeric(x, x) == pytest.approx(0.0)


def _log_traffic(settings, shift: bool, n: int = 600):
    scorer = load_scorer(settings)
    apps = assemble(load_spec("lauki_synthetic"), synthetic.generate(n, seed=11, shift=shift))
    names = [f["name"] for f in scorer.fields]
    records = apps[names].astype(object).where(apps[names].notna(), None).to_dict("records")
    DecisionLog(settings.decision_log).write("test", records, scorer.score_records(records))


@pytest.fixture
def monitored(trained, tmp_path):
    settings, version = trained
    shutil.copytree(settings.registry_url, tmp_path / "reg")
    return settings.model_copy(update={"registry_url": str(tmp_path / "reg"),
                                       "runs_dir": tmp_path / "runs",
                                       "decision_log": tmp_path / "decisions.jsonl"})


def test_shifted_traffic_is_detected(monitored):
    _log_traffic(monitored, shift=True)
    result = json.loads(Path(drift_step(monitored, "m1")).read_text())
    assert result["status"] == "ok" and result["drift"]
    assert "credit_utilization_ratio" in result["drifted_fields"]
    report = Path(monitored.runs_dir) / "monitoring" / "m1" / "drift_report.html"
    assert report.stat().st_size > 10_000


def test_traffic_like_training_data_is_not_drift(monitored):
    _log_traffic(monitored, shift=False)
    result = json.loads(Path(drift_step(monitored, "m2")).read_text())
    assert result["status"] == "ok" and not result["drift"], result["psi"][:3]


def test_too_little_traffic_is_reported_not_judged(monitored):
    _log_traffic(monitored, shift=True, n=50)
    result = json.loads(Path(drift_step(monitored, "m3")).read_text())
    assert not result["drift"] and result["status"].startswith("too little traffic")


def test_drift_command(monitored, monkeypatch, capsys):
    from credit_risk.cli import main

    _log_traffic(monitored, shift=True)
    for key in ("REGISTRY_URL", "RUNS_DIR", "DECISION_LOG"):
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(getattr(monitored, key.lower())))
    assert main(["drift"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok; drift: True")
    assert "credit_utilization_ratio" in out and "DRIFT" in out and "drift_report.html" in out


def test_decision_log_survives_a_broken_line(tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl")
    log.write("a", [{"x": 1}], [{"model_version": "v"}])
    with open(tmp_path / "d.jsonl", "ab") as fh:
        fh.write(b'{"at": "2026-01-01T00:00:00+00:00", "trunc')  # a torn write
        fh.write(b"\n")
    log.write("b", [{"x": 2}], [{"model_version": "v"}])
    assert [d["request_id"] for d in log.read()] == ["a", "b"]


def test_empty_decision_log_setting_means_no_log(monkeypatch, tmp_path):
    from credit_risk.config import Settings

    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", "")
    assert Settings().decision_log is None
    with pytest.raises(ValueError, match="is a folder"):
        Settings(decision_log=tmp_path)
