"""From a CSV file to a served model: `spec init`, the draft as written, `train`, `predict`,
and the API with numeric codes in every spelling."""

import csv

import pytest

from credit_risk.cli import main
from tests.spec import traits


@pytest.mark.integration  # trains a model
def test_a_draft_spec_trains_and_serves(tmp_path, monkeypatch, capsys):
    for key, value in {"DATA_DIR": tmp_path / "data", "RUNS_DIR": tmp_path / "runs",
                       "REGISTRY_URL": tmp_path / "reg", "SEARCH_ITERATIONS": 1,
                       "CV_FOLDS": 3, "DECISION_LOG": tmp_path / "decisions.jsonl",
                       "RELOAD_INTERVAL_S": 0}.items():
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(value))
    data = traits.write(tmp_path / "loans.csv", traits.applications(3000, seed=11))
    spec = tmp_path / "loans.yaml"
    assert main(["spec", "init", str(data), "--target", "default", "--out", str(spec)]) == 0
    assert main(["spec", "check", str(spec), str(data)]) == 0
    assert main(["train", "--spec", str(spec), "--models", "logistic_regression,xgboost"]) == 0
    assert "promoted to champion" in capsys.readouterr().out

    # predict: codes as the file writes them, and in other spellings
    apps = traits.applications(6, seed=12).drop(columns=["default"])
    apps["UrbanRural"] = ["0", "1.0", "2", "2.0", "1", "0"]
    apps.to_csv(tmp_path / "apps.csv", index=False)
    assert main(["predict", str(tmp_path / "apps.csv"), "-o", str(tmp_path / "out.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out.csv")))
    assert [r["error"] for r in rows] == [""] * 6
    assert all(0 < float(r["probability_of_default"]) < 1 for r in rows)

    # the API: 1, 1.0 and "1" are the same category, one by one and in a batch
    from credit_risk.config import Settings
    from serving import create_app

    client = create_app(Settings(), watch=False).test_client()
    base = {"income": 40000.0, "utilisation": 55.0, "NewExist": 2, "guarantor": "yes"}
    pds = []
    for code in (1, 1.0, "1"):
        response = client.post("/api/v1/predict", json={**base, "UrbanRural": code})
        assert response.status_code == 200, response.get_json()
        pds.append(response.get_json()["probability_of_default"])
    assert len(set(pds)) == 1
    batch = client.post("/api/v1/predict/batch", json={"applications": [
        {**base, "UrbanRural": code} for code in (1, 1.0, "1", 2)]})
    assert batch.status_code == 200, batch.get_json()
    results = batch.get_json()["results"]
    assert [r["probability_of_default"] for r in results[:3]] == pds
    refused = client.post("/api/v1/predict", json={**base, "UrbanRural": True})
    assert refused.status_code == 422
    assert "boolean" in refused.get_json()["fields"]["UrbanRural"]
