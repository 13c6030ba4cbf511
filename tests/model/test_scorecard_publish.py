"""A scorecard through the whole pipeline: published with its points table and card, served by
the API from the pure-data plan, its table printed by `credit-risk models scorecard`."""

import csv
import io

from credit_risk.cli import main
from credit_risk.pipeline import steps as pipeline
from credit_risk.registry import Registry
from tests.conftest import generate_data, small_settings


def test_a_scorecard_is_published_served_and_exported(tmp_path, monkeypatch, capsys):
    settings = generate_data(small_settings(tmp_path, n_customers=2500, models=("scorecard",)))
    version = pipeline.run_all(settings, "scorecard-run")
    registry = Registry(settings.registry.url)
    manifest = registry.verify(version)
    assert manifest["model"] == "scorecard" and "scorecard.csv" in manifest["files"]
    card = registry.read_file(version, "model_card.md").decode()
    assert "## Scorecard" in card and "### Points" in card
    assert card.index("## Scorecard") < card.index("## Provenance")
    assert "trained without SMOTE" in card and "SMOTE distorts" not in card
    table = registry.read_file(version, "scorecard.csv").decode()

    from serving import create_app

    client = create_app(settings, watch=False).test_client()
    application = {f["name"]: f["default"] for f in manifest["inputs"]}
    answer = client.post("/api/v1/predict",
                         json=dict(application, credit_utilization_ratio=95)).json
    assert answer["model_version"] == version
    assert answer["reasons"][0]["text"] == "Credit utilisation (95%) raises the risk"
    rows = list(csv.DictReader(io.StringIO(table)))
    assert {r["field"] for r in rows} >= {"credit_utilization_ratio", "loan_purpose"}

    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", settings.registry.url)
    capsys.readouterr()
    assert main(["models", "scorecard", version, "--csv"]) == 0
    assert capsys.readouterr().out == table
    assert main(["models", "scorecard", version]) == 0
    shown = capsys.readouterr().out
    assert shown.splitlines()[0].split() == ["field", "bin", "points", "count", "event_rate",
                                             "woe", "iv"]
    assert "credit_utilization_ratio" in shown

    other = registry.publish({"model.bin": b"x"}, {"model": "xgboost",
                                                   "dataset": "lauki_synthetic"})
    assert main(["models", "scorecard", other]) == 1
    assert "only a scorecard has a points table" in capsys.readouterr().err
