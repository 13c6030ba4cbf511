"""PDs a bank can price on: the calibration chosen by cross-validated log loss, the isotonic
step cap, the PD floor on every path, the master scale in settings and in the plan."""

import io
import json

import numpy as np
import pytest
from pydantic import ValidationError

from credit_risk.config import Settings
from credit_risk.config.rating import DEFAULT_MASTER_SCALE
from credit_risk.pipeline.calibration import (
    Calibration,
    fit_calibration,
    fit_isotonic,
    fit_sigmoid,
    fit_spline,
)
from credit_risk.pipeline.grading import grade_table
from credit_risk.scoring.grades import MasterScale
from credit_risk.scoring.plan import ARRAYS_FILE, PLAN_FILE, ScoringPlan


def _logistic_world(n=600, seed=0):
    """Raw PDs whose true PD is logistic in their log-odds: Platt scaling is the right model,
    and on few rows the step functions overfit."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-2, 1.5, n)
    raw = 1 / (1 + np.exp(-z))
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.7 * z - 0.5)))).astype(int)
    return raw, y


def _step_world(n=20_000, seed=1):
    """A PD that jumps (2%, 30%, 90%) where no sigmoid of the raw PD can follow it."""
    rng = np.random.default_rng(seed)
    raw = rng.random(n)
    pd_ = np.where(raw < 0.5, 0.02, np.where(raw < 0.8, 0.3, 0.9))
    return raw, (rng.random(n) < pd_).astype(int)


def test_sigmoid_wins_where_the_truth_is_logistic():
    raw, y = _logistic_world()
    cal = fit_calibration(raw, y, Settings())
    assert cal.method == "sigmoid"
    assert cal.cv_log_loss["sigmoid"] < min(cal.cv_log_loss["isotonic"],
                                            cal.cv_log_loss["spline"])


def test_a_step_function_wins_where_the_pd_jumps():
    raw, y = _step_world()
    cal = fit_calibration(raw, y, Settings())
    assert cal.method in ("isotonic", "spline")
    assert cal.cv_log_loss[cal.method] < cal.cv_log_loss["sigmoid"] - 0.01
    assert set(cal.summary()["cv_log_loss"]) == {"sigmoid", "isotonic", "spline"}


def test_a_fixed_method_is_kept_and_the_others_still_measured():
    raw, y = _step_world(4000)
    cal = fit_calibration(raw, y, Settings(calibration="sigmoid"))
    assert cal.method == "sigmoid" and len(cal.cv_log_loss) == 3


@pytest.mark.parametrize("share", [0.05, 0.02])
def test_no_isotonic_step_holds_more_than_the_share_and_means_are_kept(share):
    raw, y = _step_world()
    plain = Calibration(*fit_isotonic(raw, y, 0.0003, max_share=1.0)).predict(raw)
    capped = Calibration(*fit_isotonic(raw, y, 0.0003, max_share=share)).predict(raw)
    _, plain_counts = np.unique(plain, return_counts=True)
    _, counts = np.unique(capped, return_counts=True)
    assert plain_counts.max() > 0.1 * len(raw)  # without the cap, big steps
    assert counts.max() <= share * len(raw)
    assert (np.diff(capped[np.argsort(raw)]) >= 0).all()  # still non-decreasing
    for lo, hi in [(0, 0.5), (0.5, 0.8), (0.8, 1)]:  # calibration in the large per region
        inside = (raw >= lo) & (raw < hi)
        assert capped[inside].mean() == pytest.approx(plain[inside].mean(), abs=0.002)


def test_rows_sharing_one_raw_pd_are_never_split():
    raw = np.repeat([0.1, 0.2, 0.3], [500, 100, 100])
    y = np.r_[np.zeros(480), np.ones(20), np.zeros(80), np.ones(20), np.zeros(50), np.ones(50)]
    pd_ = Calibration(*fit_isotonic(raw, y.astype(int), 0.0003, max_share=0.05)).predict(raw)
    for value in (0.1, 0.2, 0.3):
        assert len(np.unique(pd_[raw == value])) == 1


@pytest.mark.parametrize("fit", [fit_sigmoid, fit_isotonic, fit_spline])
def test_every_method_keeps_pds_within_the_floor(fit):
    raw, y = _step_world(4000)
    raw = np.r_[raw, 1e-9, 1 - 1e-9]
    y = np.r_[y, 0, 1]
    pd_ = Calibration(*fit(raw, y, 0.01)).predict(raw)
    assert pd_.min() >= 0.01 and pd_.max() <= 0.99
    assert (np.diff(pd_[np.argsort(raw)]) >= -1e-12).all()


def test_too_few_defaults_to_cross_validate_falls_back_to_sigmoid():
    raw = np.linspace(0.01, 0.9, 50)
    y = np.zeros(50, dtype=int)
    y[-1] = 1
    cal = fit_calibration(raw, y, Settings())
    assert cal.method == "sigmoid" and cal.cv_log_loss == {}


# -- the master scale ---------------------------------------------------------------------
def test_the_default_scale_is_geometric_from_the_floor_to_one():
    bounds = np.array(list(DEFAULT_MASTER_SCALE.values()))
    assert 10 <= len(bounds) <= 20 and bounds[-1] == 1.0 and bounds[0] > 0.0003
    ratios = bounds[1:] / bounds[:-1]
    assert ratios.min() > 1.5 and ratios.max() < 1.7


def test_grades_at_their_bounds():
    scale = MasterScale.of({"A": 0.01, "B": 0.1, "C": 1.0})
    assert scale.grades([0.0, 0.0099, 0.01, 0.0999, 0.1, 0.5, 1.0]) == [
        "A", "A", "B", "B", "C", "C", "C"]
    assert scale.bounds("B") == (0.01, 0.1)
    default = MasterScale.default()
    assert default.grade(0.0003) == "1" and default.grade(0.00048) == "2"
    assert default.grade(0.9997) == "17"


@pytest.mark.parametrize(("scale", "says"), [
    ({"A": 0.5, "B": 0.2, "C": 1.0}, "do not increase: grade B"),
    ({"A": 0.1, "B": 0.9}, "not 1"),
    ({"A": 1.0}, "2 to 50 grades"),
    ({"A": 0.0, "B": 1.0}, "not a number in \\(0, 1\\]"),
    ({" ": 0.1, "B": 1.0}, "non-blank"),
])
def test_a_bad_master_scale_setting_is_refused(scale, says, monkeypatch):
    with pytest.raises(ValidationError, match=says):
        Settings(master_scale=scale)
    monkeypatch.setenv("CREDIT_RISK_MASTER_SCALE", json.dumps(scale))
    with pytest.raises(ValidationError, match="CREDIT_RISK_MASTER_SCALE"):
        Settings()


def test_a_master_scale_from_the_environment(monkeypatch):
    monkeypatch.setenv("CREDIT_RISK_MASTER_SCALE", '{"low": 0.05, "mid": 0.2, "high": 1}')
    assert Settings().pd.master_scale == {"low": 0.05, "mid": 0.2, "high": 1.0}


def test_a_grade_table_counts_the_rows_and_defaults_per_grade():
    scale = MasterScale.of({"A": 0.1, "B": 0.5, "C": 1.0})
    rows = grade_table(np.array([0, 0, 1, 1]), np.array([0.05, 0.2, 0.3, 0.6]), scale)
    assert [(r["grade"], r["n"], r["default_rate"]) for r in rows] == [
        ("A", 1, 0.0), ("B", 2, 0.5), ("C", 1, 1.0)]
    assert rows[1]["min_pd"] == 0.1 and rows[1]["share"] == 0.5


# -- in the plan, on every path ---------------------------------------------------------------
def _files_with(files, calibration=None, scale=None, **arrays):
    plan = json.loads(files[PLAN_FILE])
    if calibration is not None:
        plan["calibration"] = calibration
    if scale is not None:
        plan["master_scale"] = scale.to_plan()
    with np.load(io.BytesIO(files[ARRAYS_FILE]), allow_pickle=False) as npz:
        stored = {k: npz[k] for k in npz.files}
    buf = io.BytesIO()
    np.savez(buf, **{**stored, **arrays})
    return {**files, PLAN_FILE: json.dumps(plan).encode(), ARRAYS_FILE: buf.getvalue()}


@pytest.fixture(scope="module")
def champion(trained):
    from credit_risk.pipeline.steps import load_scorer

    settings, version = trained
    scorer = load_scorer(settings, version)
    registry_files = {}
    from credit_risk.registry import Registry

    registry = Registry.from_settings(settings)
    manifest = registry.verify(version)
    for name in (PLAN_FILE, ARRAYS_FILE, "booster.ubj"):
        if name in manifest["files"]:
            registry_files[name] = registry.read_file(version, name, manifest)
    return scorer, registry_files


def test_the_plan_holds_the_scale_and_calibration_the_model_was_trained_with(champion):
    scorer, files = champion
    plan = json.loads(files[PLAN_FILE])
    assert plan["calibration"]["kind"] in ("sigmoid", "isotonic", "spline")
    assert plan["calibration"]["pd_floor"] == 0.0003
    assert scorer.plan.master_scale == MasterScale.default()
    assert scorer.manifest["calibration"]["method"] == plan["calibration"]["kind"]
    assert len(scorer.manifest["master_scale"]) == len(DEFAULT_MASTER_SCALE)
    assert sum(g["n"] for g in scorer.manifest["master_scale"]) > 0


def test_a_plan_without_a_scale_is_graded_on_the_default_one(champion):
    _, files = champion
    plan = json.loads(files[PLAN_FILE])
    del plan["master_scale"]
    legacy = {**files, PLAN_FILE: json.dumps(plan).encode()}
    assert ScoringPlan.from_files(legacy).master_scale == MasterScale.default()


def test_the_floor_and_the_plans_scale_apply_to_single_and_batch_results(champion):
    from credit_risk.scoring.scorer import Scorer

    scorer, files = champion
    scale = MasterScale.of({"safe": 0.02, "risky": 1.0})
    # a calibration that sends every PD towards 0: the floor is what comes out
    sigmoid = {"kind": "sigmoid", "slope": 1.0, "intercept": -40.0, "pd_floor": 0.01}
    plan = ScoringPlan.from_files(_files_with(files, sigmoid, scale))
    floored = Scorer(plan, scorer.manifest)
    records = [{f["name"]: f["default"] for f in scorer.fields}] * 3
    single = floored.score_records(records[:1])[0]
    batch = floored.score_records(records)
    columns = floored.score_columns({k: [r[k] for r in records] for k in records[0]}, 3)
    assert single["probability_of_default"] == 0.01 and single["grade"] == "safe"
    assert [r["probability_of_default"] for r in batch] == [0.01] * 3
    assert columns["probability_of_default"] == [0.01] * 3 and columns["grade"] == ["safe"] * 3
    # and grades follow the plan's scale, not the settings'
    high = {"kind": "sigmoid", "slope": 0.0, "intercept": 2.0, "pd_floor": 0.01}
    risky = Scorer(ScoringPlan.from_files(_files_with(files, high, scale)), scorer.manifest)
    assert risky.score_records(records[:1])[0]["grade"] == "risky"


def test_a_spline_plan_scores_as_the_training_calibration(champion):
    _, files = champion
    raw, y = _step_world(3000)
    cal = Calibration(*fit_spline(raw, y, 0.0003))
    plan = ScoringPlan.from_files(_files_with(files, cal.spec, None, **cal.arrays))
    np.testing.assert_array_equal(plan.calibrate(raw), cal.predict(raw))

