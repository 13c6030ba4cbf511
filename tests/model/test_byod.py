"""Bring your own data: a new CSV dataset described only by a new spec, end to end."""

import numpy as np
import pandas as pd
import pytest

from credit_risk.pipeline import steps as pipeline
from credit_risk.registry.store import Registry
from serving import create_app
from tests.conftest import small_settings

SPEC = """
name: microloans
description: Microloan applications (test dataset).
tables:
  apps: {{source: "{csv}"}}
base: apps
target: {{column: outcome, positive: bad, label: bad loan}}
columns:
  ref: {{role: id}}
  monthly_income: {{role: numeric, label: Monthly income, unit: USD, min: 0, max: 100000,
                   missing_values: [0], max_null_rate: 0.05}}
  debt: {{role: numeric, label: Debt, unit: USD, min: 0, max: 1000000, feature: false}}
  region: {{role: categorical, label: Region}}
  sex: {{role: categorical, protected: true}}
  months_on_book: {{role: numeric, min: 0, max: 600, integer: true, monotone: decreasing}}
  outcome: {{role: target}}
derived:
  debt_to_income:
    expr: debt / monthly_income
    label: Debt to income
    monotone: increasing
gate: {{max_ece: 0.2, min_roc_auc: 0.6}}
"""


def _write_dataset(path, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 0.5, n).round()
    income[:5] = 0
    debt = (income * rng.uniform(0, 12, n)).round()
    region = rng.choice(["north", "south", "east"], n)
    months = rng.integers(0, 120, n)
    logit = -4 + 0.5 * debt / np.maximum(income, 1) + (region == "south") - months / 60
    bad = rng.random(n) < 1 / (1 + np.exp(-logit))
    pd.DataFrame({"ref": [f"A{i}" for i in range(n)], "monthly_income": income, "debt": debt,
                  "region": region, "sex": rng.choice(["f", "m"], n), "months_on_book": months,
                  "outcome": np.where(bad, "bad", "good")}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def microloans(tmp_path_factory):
    base = tmp_path_factory.mktemp("byod")
    _write_dataset(base / "micro.csv")
    spec_path = base / "microloans.yaml"
    spec_path.write_text(SPEC.format(csv=base / "micro.csv"))
    settings = small_settings(base, dataset_spec=str(spec_path),
                              models=("logistic_regression", "xgboost"))
    version = pipeline.run_all(settings, "byod")
    return settings, version


def test_new_spec_trains_and_publishes(microloans):
    settings, version = microloans
    registry = Registry(settings.registry.url)
    manifest = registry.manifest(version)
    assert manifest["dataset"] == "microloans"
    assert registry.alias_version("champion") == version, manifest["rejection_reasons"]
    assert manifest["metrics"]["roc_auc"] > 0.7
    assert 0.05 < manifest["metrics"]["default_rate"] < 0.6  # "bad" is the positive class
    assert {f["name"] for f in manifest["inputs"]} == {"monthly_income", "debt", "region",
                                                      "months_on_book"}
    assert "sex" in manifest["fairness"]["attributes"]


def test_new_spec_serves_with_its_own_schema(microloans):
    settings, version = microloans
    client = create_app(settings, watch=False).test_client()
    fields = {f["name"]: f for f in client.get("/api/v1/model").json["inputs"]}
    assert fields["region"]["categories"] == ["east", "north", "south"]
    assert fields["monthly_income"]["label"] == "Monthly income"
    app = {"monthly_income": 3000, "debt": 3000, "region": "north", "months_on_book": 24}
    low = client.post("/api/v1/predict", json=app)
    high = client.post("/api/v1/predict", json={**app, "debt": 30000, "region": "south"})
    assert low.status_code == high.status_code == 200
    assert high.json["probability_of_default"] > low.json["probability_of_default"]
    assert high.json["model_version"] == version
    bad = client.post("/api/v1/predict", json={**app, "region": "west", "income": 1})
    assert bad.status_code == 422
    assert set(bad.json["fields"]) == {"region", "income"}
    form = client.get("/").get_data(as_text=True)
    assert 'name="months_on_book"' in form and "Monthly income" in form


def test_a_rare_category_in_one_fold_trains(tmp_path):
    """A category seen in very few rows (absent from some CV folds) does not break training."""
    _write_dataset(tmp_path / "micro.csv", n=800)
    df = pd.read_csv(tmp_path / "micro.csv")
    df.loc[:1, "region"] = "island"  # two rows only
    df.to_csv(tmp_path / "micro.csv", index=False)
    spec_path = tmp_path / "microloans.yaml"
    spec_path.write_text(SPEC.format(csv=tmp_path / "micro.csv"))
    settings = small_settings(tmp_path, dataset_spec=str(spec_path),
                              models=("random_forest", "xgboost"), cv_folds=5)
    version = pipeline.run_all(settings, "rare")
    manifest = Registry(settings.registry.url).manifest(version)
    region = next(f for f in manifest["inputs"] if f["name"] == "region")
    assert "island" in region["categories"]
