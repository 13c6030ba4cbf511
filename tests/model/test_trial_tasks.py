"""One candidate's search as separate tasks (plan, a task per trial, finish) gives what
train_candidate gives in one process: the same trials, the same choice, the same model."""

import joblib
import numpy as np
import pytest

from benchmarks.distributed import trial_tasks
from credit_risk.pipeline import steps
from credit_risk.pipeline.run_paths import RunPaths
from credit_risk.pipeline.train import Candidate, train_candidate
from tests.conftest import generate_data, small_settings


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    settings = generate_data(small_settings(tmp_path_factory.mktemp("trials"), n_customers=2500,
                                            cv_folds=3, search_iterations=4,
                                            search_strategy="random", smote_ratio=0.5))
    snapshot = steps.ingest_step(settings, "trials-run")
    return settings, steps.prepare_step(settings, snapshot)


@pytest.mark.parametrize("model", ["xgboost", "logistic_regression"])
def test_the_task_pieces_choose_and_fit_what_train_candidate_does(split_dir, model):
    settings, split = split_dir
    spec, _ = steps.split_spec(split)
    X, y = steps.load_part(split, "train")
    X_test, _ = steps.load_part(split, "test")
    whole = train_candidate(model, X, y, spec, settings)

    numbers = trial_tasks.plan(settings, split, model)
    assert numbers == list(range(settings.training.search_iterations))
    # the trials in another order, as workers may finish them: the result does not depend on it
    files = [trial_tasks.trial(split, model, n) for n in reversed(numbers)]
    path = trial_tasks.finish(split, model)

    assert path == str(RunPaths.of(split).candidate(model))  # where train_step writes it
    with open(path, "rb") as fh:
        tasks: Candidate = joblib.load(fh)
    assert len(files) == len(set(files)) == len(numbers)
    assert tasks.name == model and tasks.params == whole.params
    assert tasks.cv_roc_auc == whole.cv_roc_auc
    assert tasks.search == whole.search  # every trial's params and CV ROC-AUC, same order
    assert len({r["cv_roc_auc"] for r in tasks.search}) > 1  # the choice was a real one
    assert tasks.threshold == whole.threshold and tasks.validation == whole.validation
    np.testing.assert_array_equal(tasks.model.predict_pd(X_test), whole.model.predict_pd(X_test))
    assert set(tasks.timings) == set(whole.timings) == {"folds", "trials", "refit"}
    assert tasks.fit_seconds >= sum(tasks.timings.values()) > 0


def test_a_trial_on_one_thread_scores_as_on_all(split_dir):
    """The DAG runs each trial with one thread (a worker process a core): the same scores."""
    settings, split = split_dir
    trial_tasks.plan(settings, split, "xgboost")
    one, default = (joblib.load(trial_tasks.trial(split, "xgboost", 1, threads))
                    for threads in (1, None))
    assert one["trial"].params == default["trial"].params
    np.testing.assert_allclose(one["trial"].oof, default["trial"].oof, rtol=1e-6)
    assert one["trial"].auc == pytest.approx(default["trial"].auc, abs=1e-9)
