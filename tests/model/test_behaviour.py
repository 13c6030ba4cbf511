"""Model-behaviour tests on a model trained by the real pipeline (the `trained` fixture)."""

import joblib
import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE

from credit_risk.pipeline.steps import load_scorer
from credit_risk.pipeline.train import CANDIDATES, build_pipeline, split


@pytest.fixture(scope="module")
def scorer(trained):
    settings, _ = trained
    return load_scorer(settings)


def _applications(scorer, n=200, seed=0):
    rng = np.random.default_rng(seed)
    base = {f["name"]: f["default"] for f in scorer.fields}
    rows = []
    for _ in range(n):
        r = dict(base)
        r["income"] = float(rng.uniform(2e5, 5e6))
        r["delinquent_months"] = int(rng.integers(0, 10))
        r["total_dpd"] = r["delinquent_months"] * int(rng.integers(0, 30))
        r["total_loan_months"] = int(rng.integers(12, 120))
        r["loan_purpose"] = str(rng.choice(["Home", "Personal", "Auto", "Education"]))
        rows.append(r)
    return rows


def test_higher_utilisation_never_lowers_pd(scorer):
    for app in _applications(scorer):
        pds = [scorer.score_records([{**app, "credit_utilization_ratio": u}])[0]
               ["probability_of_default"] for u in range(0, 100, 5)]
        assert all(b >= a - 1e-12 for a, b in zip(pds, pds[1:], strict=False)), pds


def test_more_delinquency_never_lowers_pd(scorer):
    for app in _applications(scorer, 50, seed=1):
        pds = [scorer.score_records([{**app, "delinquent_months": d, "total_dpd": d * 10}])[0]
               ["probability_of_default"] for d in range(0, 12)]
        assert all(b >= a - 1e-12 for a, b in zip(pds, pds[1:], strict=False)), pds


def test_pd_is_a_probability_and_risk_follows_threshold(scorer):
    results = scorer.score_records(_applications(scorer, 100, seed=2))
    for r in results:
        assert 0 < r["probability_of_default"] < 1
        assert (r["risk"] == "High") == (r["probability_of_default"] >= scorer.threshold)


def test_candidates_learn_well_above_chance(trained):
    settings, version = trained
    from credit_risk.registry.store import Registry

    manifest = Registry(settings.registry.url).manifest(version)
    assert {r["model"] for r in manifest["comparison"]} == set(settings.training.models)
    for row in manifest["comparison"]:
        assert row["test"]["roc_auc"] > 0.85, row
        assert row["test"]["n"] == manifest["metrics"]["n"]  # one test set for all


def test_smote_only_inside_the_pipeline_and_no_second_imbalance_correction(spec):
    for name in CANDIDATES:
        pipe, _ = build_pipeline(name, spec, [0] * 24, seed=0)
        steps = [s for _, s in pipe.steps]
        assert isinstance(steps[1], SMOTE)
        model = pipe.named_steps["model"]
        params = model.get_params()
        assert params.get("class_weight") in (None,)
        assert params.get("scale_pos_weight") in (None, 1)


def test_test_split_never_reaches_training(trained):
    settings, version = trained
    run = next(settings.data.runs_dir.iterdir())
    train = pd.read_parquet(run / "split" / "train.parquet")
    test = pd.read_parquet(run / "split" / "test.parquet")
    assert not set(train["loan_id"]) & set(test["loan_id"])
    candidate = joblib.load(run / "candidates" / "xgboost.joblib")
    # The final model saw exactly the training rows: its feature medians are the train medians.
    medians = candidate.model.features.medians_
    assert medians["age"] == float(train["age"].median())


def test_split_is_stratified_and_refuses_one_class(tables, spec):
    df = tables["loans"]
    y = df["default"].to_numpy(dtype=int)
    _, _, y_train, y_test = split(df, y, 0.2, 0)
    assert abs(y_train.mean() - y_test.mean()) < 0.01


def test_split_by_key_keeps_every_row_on_its_side_in_later_snapshots(tables):
    df = tables["loans"]
    y = df["default"].to_numpy(dtype=int)
    _, test1, _, _ = split(df, y, 0.2, 0, "loan_id")
    assert 0.17 < len(test1) / len(df) < 0.23
    # A later snapshot: some loans gone, new ones arrived, rows reordered.
    later = pd.concat([df.iloc[100:], df.iloc[:50].assign(loan_id=lambda d: "N" + d["loan_id"])])
    later = later.sample(frac=1, random_state=1)
    train2, test2, _, _ = split(later, later["default"].to_numpy(dtype=int), 0.2, 0, "loan_id")
    assert not set(test2["loan_id"]) & set(df["loan_id"].iloc[100:]) - set(test1["loan_id"])
    assert set(test1["loan_id"]) & set(later["loan_id"]) <= set(test2["loan_id"])
    assert not set(train2["loan_id"]) & set(test1["loan_id"])
    from credit_risk.pipeline.train import TrainingError

    with pytest.raises(TrainingError, match="single class"):
        split(df, np.zeros(len(df), dtype=int), 0.2, 0)
