"""Training at scale: SMOTE's ratio inside the folds, successive halving, XGBoost's early
stopping on each fold's own rows, and the scoring plan of an early-stopped booster."""

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

from credit_risk.config import Settings
from credit_risk.pipeline import train
from credit_risk.pipeline.bundle import check_plan, plan_of
from credit_risk.pipeline.calibration import Calibration, fit_isotonic
from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.train import CalibratedModel, build_pipeline, split, train_candidate
from credit_risk.scoring.plan import FeaturePlan
from credit_risk.spec.dataset import DatasetSpec


def _settings(**overrides) -> Settings:
    values = dict(cv_folds=3, search_iterations=1, search_strategy="random", smote_ratio=1.0,
                  early_stopping_rounds=0, decision_log=None)
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="module")
def data(tables, spec):
    df = assemble(spec, tables)
    y = df.pop("default").to_numpy(dtype=int)
    X, X_test, y_train, y_test = split(df, y, 0.2, 0)
    return X.reset_index(drop=True), X_test, y_train, y_test


class _Spy:
    """Records the labels (and inputs) every fit of a class sees on more than one column (the
    models', not the one-column Platt calibrations'), then fits as usual."""

    def __init__(self, monkeypatch, cls, method="fit"):
        self.calls: list[dict] = []
        original = getattr(cls, method)
        spy = self

        def wrapper(est, X, y, *args, **kwargs):
            if np.ndim(X) == 2 and np.shape(X)[1] > 1:
                spy.calls.append({"X": np.asarray(X).copy(), "y": np.asarray(y).copy(),
                                  **kwargs})
            return original(est, X, y, *args, **kwargs)

        monkeypatch.setattr(cls, method, wrapper)


def test_smote_grows_the_minority_to_the_ratio_inside_each_fold(monkeypatch, data, spec):
    X, _, y, _ = data
    fits = _Spy(monkeypatch, LogisticRegression)
    c = train_candidate("logistic_regression", X, y, spec, _settings(smote_ratio=0.5))
    assert len(fits.calls) == 3 + 1  # one fit per fold, one refit
    majority = int((y == 0).sum())
    for call in fits.calls[:3]:  # a fold's training part: about 2/3 of the majority rows
        bad, good = int(call["y"].sum()), int((call["y"] == 0).sum())
        assert abs(good - majority * 2 / 3) <= 1
        assert bad == round(0.5 * good)  # SMOTE made minority = 0.5 x majority, no more
    refit = fits.calls[3]["y"]
    assert (refit == 0).sum() == majority and refit.sum() == round(0.5 * majority)
    assert c.validation["ece_calibrated"] < c.validation["ece_uncalibrated"]


def test_a_ratio_below_the_data_s_own_adds_no_rows(monkeypatch, data, spec):
    X, _, y, _ = data
    assert y.mean() / (1 - y.mean()) > 0.05
    fits = _Spy(monkeypatch, LogisticRegression)
    train_candidate("logistic_regression", X, y, spec, _settings(smote_ratio=0.05))
    for call in fits.calls[:3]:  # each fold's own training rows, none made up
        assert abs(len(call["y"]) - len(y) * 2 / 3) <= 1
        assert abs(call["y"].sum() - y.sum() * 2 / 3) <= 1
    assert len(fits.calls[3]["y"]) == len(y) and fits.calls[3]["y"].sum() == y.sum()


def test_forest_trees_draw_at_most_the_cap_of_rows(monkeypatch, data, spec):
    X, _, y, _ = data
    fits = _Spy(monkeypatch, RandomForestClassifier)
    c = train_candidate("random_forest", X, y, spec, _settings(forest_max_tree_rows=1_000))
    assert len(fits.calls) == 3 + 1 and len(fits.calls[3]["y"]) > 2 * 2_000
    forest = c.model.pipeline.named_steps["model"]
    assert forest.max_samples == pytest.approx(1_000 / len(fits.calls[3]["y"]))
    # each tree's root holds the distinct rows of its bootstrap draw: at most the cap
    roots = [t.tree_.n_node_samples[0] for t in forest.estimators_]
    assert max(roots) <= 1_000 and min(roots) > 500
    uncapped = train_candidate("random_forest", X, y, spec, _settings())
    roots = [t.tree_.n_node_samples[0] for t in
             uncapped.model.pipeline.named_steps["model"].estimators_]
    assert min(roots) > 1_000  # half the rows, as before


def test_halving_keeps_the_best_trials_on_growing_samples(data, spec):
    X, _, y, _ = data
    settings = _settings(search_strategy="halving", search_iterations=9, halving_factor=3,
                         halving_min_rows=250)
    c = train_candidate("logistic_regression", X, y, spec, settings)
    rungs = [[r for r in c.search if r["rung"] == i] for i in range(3)]
    assert [len(r) for r in rungs] == [9, 3, 1]
    assert [r[0]["rows"] for r in rungs] == [round(len(y) / 9), round(len(y) / 3), len(y)]
    assert len({r["params"]["C"] for r in rungs[0]}) == 9  # nine different trials
    for smaller, larger in zip(rungs, rungs[1:], strict=False):
        ranked = sorted(smaller, key=lambda r: -r["cv_roc_auc"])
        assert [r["params"] for r in larger] == [r["params"] for r in ranked[:len(larger)]]
    assert c.params == rungs[2][0]["params"]
    assert c.cv_roc_auc == rungs[2][0]["cv_roc_auc"]


def test_random_search_runs_every_trial_on_all_rows_and_takes_the_best(data, spec):
    X, _, y, _ = data
    c = train_candidate("logistic_regression", X, y, spec,
                        _settings(search_iterations=3))
    assert [r["rows"] for r in c.search] == [len(y)] * 3
    best = max(c.search, key=lambda r: r["cv_roc_auc"])
    assert c.params == best["params"] and c.cv_roc_auc == best["cv_roc_auc"]


ID_SPEC = {
    "name": "ids", "tables": {"t": {"source": "t.csv"}}, "base": "t",
    "target": {"column": "bad", "positive": 1},
    "columns": {"row": {"role": "numeric"}, "x": {"role": "numeric"},
                "kind": {"role": "categorical"}, "bad": {"role": "target"}},
}


def _id_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    kind = rng.choice(["a", "b"], n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 1.5 * x + (kind == "b"))))).astype(int)
    return pd.DataFrame({"row": np.arange(n), "x": x, "kind": kind}), y


def test_early_stopping_sees_only_its_fold_s_own_training_rows(monkeypatch):
    """The rows XGBoost stops on are real rows of the fold's training part, never SMOTE's
    input, never the fold's held-out rows (its out-of-fold PDs), never the test split."""
    spec = DatasetSpec.model_validate(ID_SPEC)
    df, y_all = _id_frame(4000)
    X, X_test, y, _ = split(df, y_all, 0.2, 0)
    monkeypatch.setattr(train, "MIN_STOPPING_CLASS_ROWS", 5)
    smote = _Spy(monkeypatch, SMOTE, "fit_resample")
    fits = _Spy(monkeypatch, XGBClassifier)
    settings = _settings(early_stopping_rounds=10, early_stopping_fraction=0.1,
                         smote_ratio=0.8)
    c = train_candidate("xgboost", X, y, spec, settings)

    train_ids, test_ids = set(X["row"]), set(X_test["row"])
    assert len(smote.calls) == len(fits.calls) == 3 + 1
    held_out = []
    for sampled, fit in zip(smote.calls[:3], fits.calls[:3], strict=True):
        seen = set(sampled["X"][:, 0].astype(int))  # column 0: the row id
        (stop_X, stop_y), = fit["eval_set"]
        stop = set(stop_X[:, 0].astype(int))
        assert len(stop) == len(stop_X)  # real rows, each once: nothing synthetic
        assert stop <= train_ids and not stop & test_ids
        assert not stop & seen  # SMOTE never saw them
        part = seen | stop  # the fold's training part
        assert abs(len(stop) - 0.1 * len(part)) <= 2
        assert abs(stop_y.mean() - y.mean()) < 0.02  # stratified, not resampled
        np.testing.assert_array_equal(fit["X"][:len(sampled["X"]), 0], sampled["X"][:, 0])
        held_out.append(train_ids - part)
    # the three held-out parts (whose PDs calibrate) partition the training rows
    assert set().union(*held_out) == train_ids
    assert sum(map(len, held_out)) == len(train_ids)
    # the refit: every training row, no stopping part, the folds' mean number of trees
    assert "eval_set" not in fits.calls[3]
    assert set(smote.calls[3]["X"][:, 0].astype(int)) == train_ids
    trees = c.search[-1]["trees"]
    assert len(trees) == 3 and max(trees) < 300  # it did stop early
    final = c.model.pipeline.named_steps["model"]
    assert final.n_estimators == c.params["n_estimators"] == round(np.mean(trees))
    check_plan(c.model, X_test)


def test_an_early_stopped_booster_compiles_to_the_trees_it_uses():
    spec = DatasetSpec.model_validate(ID_SPEC)
    df, y = _id_frame(2000, seed=1)
    pipe, _ = build_pipeline("xgboost", spec, [0, 0, 0, 0], seed=0)
    features = pipe.named_steps["features"].fit(df.iloc[:1600])
    model = pipe.named_steps["model"].set_params(early_stopping_rounds=5, eval_metric="auc",
                                                 learning_rate=0.3)
    rows = features.transform(df)
    model.fit(rows[:1600], y[:1600], eval_set=[(rows[1600:], y[1600:])], verbose=False)
    assert model.best_iteration < model.get_booster().num_boosted_rounds() - 1
    raw = train.raw_pd(pipe, df)
    calibrated = CalibratedModel(pipe, Calibration(*fit_isotonic(raw, y, floor=0.0)))
    plan = plan_of(calibrated)
    assert plan.plan["head"]["iteration_range"] == [0, model.best_iteration + 1]
    check_plan(calibrated, df)
    every_tree = model.get_booster().inplace_predict(rows.astype(np.float32),
                                                     predict_type="margin")
    assert not np.allclose(train.expit(every_tree), raw)  # the range matters


def test_dirty_categories_encode_as_the_plan_encodes_them():
    spec = DatasetSpec.model_validate({
        **ID_SPEC, "columns": {**ID_SPEC["columns"], "kind": {
            "role": "categorical", "categories": ["Y", "N"], "replace": {"0": "N"},
            "missing_values": ["T", "`"]}}})
    df = pd.DataFrame({"row": np.arange(10), "x": np.arange(10.0),
                       "kind": ["Y", " N", "0", "T", "`", None, np.nan, "Y ", "Q", "Y"]})
    features = FeatureTransformer(spec).fit(df)
    assert features.categories_["kind"] == ["Y", "N"] and features.modes_["kind"] == "Y"
    got = features.transform(df)
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    np.testing.assert_array_equal(got, FeaturePlan(features.plan_).matrix(records))
    hot = got[:, -2:]  # kind=Y, kind=N
    np.testing.assert_array_equal(hot, [[1, 0], [0, 1], [0, 1], [1, 0], [1, 0], [1, 0],
                                        [1, 0], [1, 0], [0, 0], [1, 0]])

