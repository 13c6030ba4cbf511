"""The monitoring DAG's `load_outcomes` task: a configured CSV or SQL source, loaded
idempotently; the retention setting must keep decisions until their loans matured."""

import csv

import pytest
from pydantic import ValidationError

from credit_risk.config import Settings
from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.monitoring import load_outcomes_step
from credit_risk.records.backends import open_outcomes


def _outcomes_csv(path, n=5):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["application_id", "defaulted", "observed_at"])
        for i in range(n):
            w.writerow([f"L{i:05d}", i % 2 == 0, "2026-01-15"])
    return path


def test_a_configured_csv_is_loaded_once(tmp_path):
    settings = Settings(decision_log=tmp_path / "decisions.jsonl",
                        outcomes_csv=_outcomes_csv(tmp_path / "outcomes.csv"))
    assert load_outcomes_step(settings) | {"store": None} == {
        "source": str(tmp_path / "outcomes.csv"), "read": 5, "new": 5, "store": None}
    assert load_outcomes_step(settings)["new"] == 0  # the daily reload stores nothing twice
    with open_outcomes(settings) as store:
        assert store.count() == 5


def test_nothing_configured_is_a_no_op(tmp_path):
    settings = Settings(decision_log=tmp_path / "decisions.jsonl")
    assert load_outcomes_step(settings) == {"source": None, "read": 0, "new": 0}
    assert not (tmp_path / "outcomes.jsonl").exists()


def test_a_sql_source_needs_its_url(tmp_path, monkeypatch):
    with pytest.raises(ValidationError, match="outcomes_sql_url_env"):
        Settings(outcomes_sql="SELECT 1")
    monkeypatch.delenv("OUTCOMES_DB", raising=False)
    settings = Settings(decision_log=tmp_path / "d.jsonl", outcomes_sql="SELECT 1",
                        outcomes_sql_url_env="OUTCOMES_DB")
    with pytest.raises(CreditRiskError, match="OUTCOMES_DB"):
        load_outcomes_step(settings)


def test_retention_must_outlast_the_loans_maturing_when_outcomes_are_loaded(tmp_path):
    source = tmp_path / "outcomes.csv"
    with pytest.raises(ValidationError, match="before their loans matured"):
        Settings(decision_retention_days=365, outcomes_csv=source)
    assert Settings(decision_retention_days=800, outcomes_csv=source).decisions.retention_days \
        == 800
    assert Settings(decision_retention_days=30).decisions.retention_days == 30  # no outcomes
