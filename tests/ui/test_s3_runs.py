"""The pages read run folders on an object store too (CREDIT_RISK_RUNS_DIR=s3://...), with the
same allow-list: reports are served, anything else is a 404."""

import json

import fsspec
from fastapi.testclient import TestClient

from credit_risk.pipeline.run_reports import Comparison
from credit_risk_ui import create_ui
from tests.ui.conftest import drift_report
from tests.ui.test_airflow_pages import logged_in


def test_run_and_monitoring_pages_on_s3(trained_copy, s3_url):
    settings, _ = trained_copy
    fs = fsspec.filesystem("s3")
    fs.put(str(settings.data.runs_dir / "fixture-run"), f"{s3_url}/runs/fixture-run",
           recursive=True)
    fs.pipe(f"{s3_url}/runs/monitoring/daily-1/drift.json",
            json.dumps(drift_report(status="ok", drift=True, drifted_fields=["age"],
                                    psi=[{"field": "age", "psi": 0.3}])).encode())
    client = TestClient(create_ui(settings.model_copy(update={"runs_dir": f"{s3_url}/runs"}),
                                  logged_in))
    assert "fixture-run" in client.get("/runs").text
    assert "comparison.json" in client.get("/runs/fixture-run").text
    comparison = client.get("/runs/fixture-run/comparison.json")
    assert comparison.status_code == 200
    assert Comparison.loads(comparison.content, "the served comparison.json").selected
    assert client.get("/runs/fixture-run/validation/validation.json").status_code == 200
    for private in ("split/train.parquet", "raw/manifest.json", "..%2Fmonitoring%2Fx",
                    "candidates/xgboost.joblib"):
        assert client.get(f"/runs/fixture-run/{private}").status_code == 404, private
    page = client.get("/monitoring").text
    assert "daily-1" in page and "age" in page
    assert client.get("/runs/monitoring/daily-1/drift.json").status_code == 200
    assert client.get("/runs/nope").status_code == 404
