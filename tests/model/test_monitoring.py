"""Drift monitoring: PSI, and the drift check on logged traffic vs the champion's training data."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit_risk.datasets import synthetic
from credit_risk.pipeline import monitoring
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.monitoring import (
    DriftAccumulator,
    drift_step,
    drift_table,
    psi_categorical,
    psi_numeric,
)
from credit_risk.pipeline.run_reports import DriftReport, read_report
from credit_risk.pipeline.steps import load_scorer
from credit_risk.records.backends import decision_log_at
from credit_risk.registry import Registry
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


FIELDS = [{"name": "x", "type": "number"}, {"name": "k", "type": "integer"},
          {"name": "c", "type": "category"}]


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.02] = np.nan
    cats = np.array(["a", "b", "c", None] + (["new"] if shift else []), dtype=object)
    return pd.DataFrame({"x": x, "k": rng.poisson(3 + shift, n),
                         "c": cats[rng.integers(0, len(cats), n)], "id": np.arange(n)})


@pytest.mark.parametrize("chunk", [250, 997, 50_000])
def test_psi_over_chunks_equals_psi_over_all_rows_at_once(chunk):
    reference, current = _frame(5000, 1), _frame(23_456, 2, shift=0.3)
    acc = DriftAccumulator(reference, FIELDS)
    for start in range(0, len(current), chunk):
        acc.add(current.iloc[start:start + chunk])
    table = {r["field"]: r["psi"] for r in acc.psi_table()}
    assert acc.rows == len(current)
    assert table == {
        "x": psi_numeric(reference["x"].to_numpy(), current["x"].to_numpy()),
        "k": psi_numeric(reference["k"].to_numpy(), current["k"].to_numpy()),
        "c": psi_categorical(reference["c"], current["c"])}
    assert table["c"] > 0.1 and table["x"] > 0.05  # a shift that shows
    assert {r["field"]: r["psi"] for r in drift_table(reference, current, FIELDS)} == table


def test_the_evidently_sample_is_bounded_uniform_and_seeded():
    reference, current = _frame(1000, 1), _frame(20_000, 3)

    def sample(k: int, seed: int, chunk: int = 997) -> pd.DataFrame:
        fields = [*FIELDS, {"name": "id", "type": "integer"}]
        acc = DriftAccumulator(reference, fields, sample_rows=k, seed=seed)
        for start in range(0, len(current), chunk):
            acc.add(current.iloc[start:start + chunk])
        return acc.sample()

    s = sample(500, seed=0)
    assert len(s) == 500 and s["id"].is_unique and s["id"].is_monotonic_increasing
    rows = current.set_index("id").loc[s["id"]]  # each sampled row is a logged row, whole
    assert np.allclose(rows["x"], s["x"].astype(float), equal_nan=True)
    assert abs(s["id"].mean() - 10_000) < 1500  # spread over the window, not its start
    assert s["x"].dtype == float and s["k"].dtype == np.int64
    assert s["id"].tolist() == sample(500, seed=0, chunk=10_000)["id"].tolist()
    assert s["id"].tolist() != sample(500, seed=1)["id"].tolist()
    assert sample(50_000, seed=0)["id"].tolist() == list(range(20_000))  # fewer: all rows


def test_evidently_gets_the_sample_and_psi_every_row(monitored, monkeypatch):
    seen = []
    real = monitoring.evidently_report
    monkeypatch.setattr(monitoring, "evidently_report",
                        lambda ref, cur, path: seen.append(cur) or real(ref, cur, path))
    _log_traffic(monitored, shift=True)
    result = read_report(DriftReport, drift_step(monitored, "m5", evidently_rows=150))
    assert result.current_rows == result.psi_rows == 600
    assert result.evidently_sample_rows == 150 and len(seen[0]) == 150
    logged = pd.DataFrame([d["inputs"] for d in decision_log_at(monitored.decisions.url).read()])
    manifest = load_scorer(monitored).manifest
    reference = pd.read_parquet(io.BytesIO(Registry(monitored.registry.url).read_file(
        manifest["version"], monitoring.REFERENCE_FILE)))
    assert [r.model_dump() for r in result.psi] == drift_table(reference, logged,
                                                               manifest["inputs"])


def _log_traffic(settings, shift: bool, n: int = 600):
    scorer = load_scorer(settings)
    apps = assemble(load_spec("lauki_synthetic"), synthetic.generate(n, seed=11, shift=shift))
    names = [f["name"] for f in scorer.fields]
    records = apps[names].astype(object).where(apps[names].notna(), None).to_dict("records")
    decision_log_at(settings.decisions.url).write("test", records, scorer.score_records(records))


@pytest.fixture
def monitored(trained, tmp_path):
    settings, version = trained
    shutil.copytree(settings.registry.url, tmp_path / "reg")
    return settings.model_copy(update={"registry_url": str(tmp_path / "reg"),
                                       "runs_dir": tmp_path / "runs",
                                       "decision_log": tmp_path / "decisions.jsonl"})


def test_shifted_traffic_is_detected(monitored):
    _log_traffic(monitored, shift=True)
    result = read_report(DriftReport, drift_step(monitored, "m1"))
    assert result.status == "ok" and result.drift
    assert "credit_utilization_ratio" in result.drifted_fields
    report = Path(monitored.data.runs_dir) / "monitoring" / "m1" / "drift_report.html"
    assert report.stat().st_size > 10_000


def test_traffic_like_training_data_is_not_drift(monitored):
    _log_traffic(monitored, shift=False)
    result = read_report(DriftReport, drift_step(monitored, "m2"))
    assert result.status == "ok" and not result.drift, result.psi[:3]


def test_too_little_traffic_is_reported_not_judged(monitored):
    _log_traffic(monitored, shift=True, n=50)
    path = drift_step(monitored, "m3")
    result = read_report(DriftReport, path)
    assert not result.drift and result.status.startswith("too little traffic")
    # the figures a short report does not have are left out of its file, not written as null
    assert "psi" not in json.loads(Path(path).read_text()) and result.psi == []


def test_drift_command(monitored, monkeypatch, capsys):
    from credit_risk.cli import main

    _log_traffic(monitored, shift=True)
    for key in ("REGISTRY_URL", "RUNS_DIR", "DECISION_LOG"):
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(monitored.flat()[key.lower()]))
    assert main(["drift"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok; drift: True")
    assert "credit_utilization_ratio" in out and "DRIFT" in out and "drift_report.html" in out


def test_decision_log_survives_a_broken_line(tmp_path):
    log = decision_log_at(tmp_path / "d.jsonl")
    log.write("a", [{"x": 1}], [{"model_version": "v"}])
    with open(tmp_path / "d.jsonl", "ab") as fh:
        fh.write(b'{"at": "2026-01-01T00:00:00+00:00", "trunc')  # a torn write
        fh.write(b"\n")
    log.write("b", [{"x": 2}], [{"model_version": "v"}])
    assert [d["request_id"] for d in log.read()] == ["a", "b"]


def test_empty_decision_log_setting_means_no_log(monkeypatch, tmp_path):
    from credit_risk.config import Settings

    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", "")
    assert Settings().decisions.url is None
    with pytest.raises(ValueError, match="is a folder"):
        Settings(decision_log=tmp_path)


def test_decision_log_reads_lines_that_only_the_standard_json_module_parses(tmp_path):
    """NaN, as json.dumps writes it (the writer without orjson): read, not skipped."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"at": "2026-01-01T00:00:00+00:00", "request_id": "a", '
                    '"inputs": {"x": NaN}, "model_version": "v"}\n')
    [record] = decision_log_at(path).read()
    assert record["request_id"] == "a" and np.isnan(record["inputs"]["x"])


def test_traffic_is_only_the_windows_decisions_by_the_datasets_versions(tmp_path):
    from datetime import UTC, datetime, timedelta

    from credit_risk.pipeline.monitoring import traffic_chunks

    dlog = decision_log_at(tmp_path / "d.jsonl")
    for i, version in enumerate(["v1", "other", "v1", "v2", "other", "v1"]):
        dlog.write(f"r{i}", [{"x": i, "c": "a"}], [{"model_version": version}])
    now = datetime.now(UTC)
    frames = list(traffic_chunks(dlog, now - timedelta(days=1), now + timedelta(seconds=1),
                                 {"v1", "v2"}, ["x", "c"], chunk_rows=2))
    assert [f["x"].tolist() for f in frames] == [[0], [2, 3], [5]]  # chunks of the log
    assert list(traffic_chunks(dlog, now + timedelta(seconds=1), None, {"v1"}, ["x"])) == []
