"""The monitoring page: per run, PSI per field and the performance figures, with their plots
served from the allow-list, and the link to the Evidently report."""

from __future__ import annotations

from fastapi.testclient import TestClient

from credit_risk.pipeline.monitoring import drift_step, performance_step
from credit_risk_ui import create_ui
from tests.e2e.test_performance_dag import log_matured_batch
from tests.model.test_monitoring import _log_traffic
from tests.ui.conftest import drift_report, performance_report, small_site
from tests.ui.test_airflow_pages import logged_in


def test_monitoring_page_shows_psi_and_performance_plots(trained_copy, tmp_path, monkeypatch):
    settings, _ = trained_copy
    settings = settings.model_copy(update={"decision_log": tmp_path / "d.jsonl"})
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(settings.decisions.url))
    log_matured_batch(settings, tmp_path, shift=True, n=1500)
    _log_traffic(settings, shift=True)
    drift_step(settings, "daily-1")
    performance_step(settings, "daily-1")
    client = TestClient(create_ui(settings, logged_in))
    page = client.get("/monitoring").text
    assert "daily-1" in page and "credit_utilization_ratio" in page  # PSI per field
    for src in ("runs/monitoring/daily-1/psi.png", "runs/monitoring/daily-1/performance.png",
                "runs/monitoring/daily-1/drift_report.html"):
        assert src in page
    assert "Performance on matured loans" in page and "roc_auc" in page  # an alert's message
    for name in ("psi.png", "performance.png"):
        png = client.get(f"/runs/monitoring/daily-1/{name}")
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert client.get("/runs/monitoring/daily-1/performance.json").json()["alert"] is True
    assert client.get("/runs/monitoring/daily-1/recent.parquet").status_code == 404


def test_a_hand_edited_report_is_marked_unreadable_and_the_other_still_shown(tmp_path):
    settings, _, _ = small_site(
        tmp_path, {"dataset": "lauki"}, "first", "ml-engineer",
        {**drift_report(status="ok"), "drift": "perhaps"},  # not a flag: unreadable
        performance_report(status="all matured"))
    page = TestClient(create_ui(settings, logged_in)).get("/monitoring")
    assert page.status_code == 200
    assert "Unreadable drift report." in page.text
    assert "Unreadable performance report." not in page.text
    assert "all matured" in page.text
