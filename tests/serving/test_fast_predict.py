"""The fast serving path gives the numbers of the fitted pipeline, one row or 10,000 at a time."""

import json

import numpy as np
import pytest

from credit_risk.datasets import synthetic
from credit_risk.fast_predict import FastPredictor
from credit_risk.ingest import assemble
from credit_risk.pipeline import load_scorer
from credit_risk.schema import validate_application


@pytest.fixture(scope="module")
def frame(spec):
    return assemble(spec, synthetic.generate(10_000, seed=11)).head(10_000)


@pytest.fixture(scope="module")
def candidates(trained):
    """Every candidate the fixture run trained (logistic regression and XGBoost)."""
    import joblib

    settings, _ = trained
    return {p.stem: joblib.load(p).model
            for p in (settings.runs_dir).glob("*/candidates/*.joblib")}


def test_fixture_trains_both_kinds(candidates):
    assert {"logistic_regression", "xgboost"} <= set(candidates)
    kinds = {name: FastPredictor(m).kind for name, m in candidates.items()}
    assert kinds["xgboost"] == "xgboost" and kinds["logistic_regression"] == "linear"


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_rows_match_the_feature_transformer(candidates, frame, name):
    model = candidates[name]
    fast = FastPredictor(model)
    records = frame[model.features.numeric_inputs_ + model.features.categorical_] \
        .astype(object).where(frame.notna(), None).to_dict("records")
    expected = model.features.transform(frame)
    batch = fast.rows(records)
    assert batch.shape == expected.shape == (10_000, fast.features.width)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-12)
    single = np.vstack([fast.rows([r]) for r in records])
    np.testing.assert_array_equal(single, batch)


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_single_and_batch_pds_match_the_pipeline(candidates, frame, name):
    model = candidates[name]
    fast = FastPredictor(model)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    batch = fast.predict_records(records)
    single = np.concatenate([fast.predict_records([r]) for r in records])
    np.testing.assert_allclose(single, batch, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(batch, model.predict_pd(frame), rtol=1e-9, atol=1e-12)
    assert ((batch > 0) & (batch < 1)).all()


def test_scorer_single_and_batch_results_are_the_same(trained, frame):
    settings, version = trained
    scorer = load_scorer(settings, version)
    names = [f["name"] for f in scorer.fields]
    raw = frame[names].astype(object).where(frame[names].notna(), None).to_dict("records")
    records = [clean for clean, errors in (validate_application(scorer.fields, r) for r in raw)
               if not errors]
    assert len(records) > 9_000
    batch = scorer.score_records(records)
    single = [scorer.score_records([r])[0] for r in records]
    keys = ("risk", "credit_score", "rating", "model_version")
    assert [tuple(r[k] for k in keys) for r in single] == [tuple(r[k] for k in keys)
                                                          for r in batch]
    np.testing.assert_allclose([r["probability_of_default"] for r in single],
                               [r["probability_of_default"] for r in batch], rtol=1e-12)


def test_xgboost_booster_runs_on_one_thread(candidates):
    model = candidates["xgboost"]
    fast = FastPredictor(model)
    config = json.loads(fast.booster.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "1"
    assert fast.booster is not model.pipeline[-1].get_booster()  # a private copy


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_overflowing_features_stay_finite(candidates, name):
    model = candidates[name]
    fast = FastPredictor(model)
    record = {c: model.features.medians_.get(c) for c in model.features.numeric_inputs_}
    record.update(income=1e-300, loan_amount=1e10)
    for rows in (fast.rows([record]), fast.rows([record, record])):
        assert np.isfinite(rows).all()
        pd_ = fast.predict(rows)
        assert np.isfinite(pd_).all() and ((pd_ >= 0) & (pd_ <= 1)).all()
