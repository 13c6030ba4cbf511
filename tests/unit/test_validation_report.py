"""The validation report's statistics, against scikit-learn and SciPy on constructed data."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta, binom
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from credit_risk.pipeline.monitoring import psi_categorical
from credit_risk.pipeline.validation_report.build import discrimination, segments
from credit_risk.pipeline.validation_report.calibration import (
    GradeBounds,
    assign,
    calibration_by_grade,
    check_grades,
    grade_stability,
    grade_test,
    quantile_grades,
)
from credit_risk.pipeline.validation_report.card import validation_markdown
from credit_risk.pipeline.validation_report.importance import importance_of
from credit_risk.pipeline.validation_report.model import ValidationReport
from credit_risk.spec.dataset import DatasetSpec, SpecError, load_spec

RNG = np.random.default_rng(3)


def scored(n=4000):
    """Labels drawn from known PDs: a calibrated score by construction."""
    p = RNG.beta(1, 12, n)
    return (RNG.random(n) < p).astype(int), p


def test_discrimination_matches_scikit_learn():
    y, p = scored()
    d = discrimination(y, p)
    fpr, tpr, _ = roc_curve(y, p)
    assert d.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert d.gini == pytest.approx(2 * roc_auc_score(y, p) - 1)
    assert d.ks == pytest.approx(np.max(tpr - fpr))
    assert (d.n, d.defaults) == (len(y), y.sum())
    one_class = discrimination(np.zeros(5, int), np.linspace(0, 1, 5))
    assert one_class.roc_auc is None and one_class.ks is None and one_class.default_rate == 0


@pytest.mark.parametrize(("n", "d", "pd_", "light"), [
    (1000, 20, 0.02, "green"),    # as many defaults as expected
    (1000, 29, 0.02, "amber"),    # Jeffreys p 0.026
    (1000, 40, 0.02, "red"),      # twice the PD
    (1000, 5, 0.02, "green"),     # fewer defaults: conservative, never flagged (one-sided)
])
def test_jeffreys_and_binomial_verdicts(n, d, pd_, light):
    y = np.r_[np.ones(d, int), np.zeros(n - d, int)]
    t = grade_test("G", y, np.full(n, pd_), amber_p=0.05, red_p=0.01)
    assert t.jeffreys_p == pytest.approx(beta.cdf(pd_, d + 0.5, n - d + 0.5))
    assert t.binomial_p == pytest.approx(binom.sf(d - 1, n, pd_))
    assert t.light == light
    low, high = t.interval
    assert low < d / n < high


def test_amber_and_red_follow_the_thresholds():
    y = np.r_[np.ones(29, int), np.zeros(971, int)]
    p = grade_test("G", y, np.full(1000, 0.02), 0.05, 0.01).jeffreys_p
    assert 0.01 < p < 0.05
    assert grade_test("G", y, np.full(1000, 0.02), 0.05, p * 1.01).light == "red"
    assert grade_test("G", y, np.full(1000, 0.02), p * 0.99, p * 0.5).light == "green"


def test_a_grade_without_defaults_or_rows():
    t = grade_test("G", np.zeros(50, int), np.full(50, 0.01), 0.05, 0.01)
    assert t.interval[0] == 0.0 and t.light == "green"
    empty = grade_test("G", np.zeros(0, int), np.zeros(0), 0.05, 0.01)
    assert empty.n == 0 and empty.light is None and empty.jeffreys_p is None


def test_grades_assign_and_refuse_bad_scales():
    grades = [GradeBounds("A", 0.0, 0.01), GradeBounds("B", 0.01, 0.1),
              GradeBounds("C", 0.2, 1.0)]
    got = assign(np.array([0.0, 0.0099, 0.01, 0.15, 0.2, 1.0]), grades)
    assert got.tolist() == [0, 0, 1, -1, 2, 2]
    with pytest.raises(ValueError, match="overlaps"):
        check_grades([GradeBounds("A", 0.0, 0.1), GradeBounds("B", 0.05, 1.0)])
    with pytest.raises(ValueError, match="lower < upper"):
        check_grades([GradeBounds("A", 0.1, 0.1)])
    q = quantile_grades(np.linspace(0.001, 0.5, 1000), 10)
    assert len(q) == 10 and q[0].lower == 0 and q[-1].upper == 1
    # a step function's PDs: tied quantiles merge into fewer grades
    assert len(quantile_grades(np.repeat([0.01, 0.2], 500), 10)) == 2


def test_calibration_uses_the_grade_pd_of_a_master_scale():
    y, p = scored()
    grades = [GradeBounds("low", 0, 0.05, pd=0.03), GradeBounds("high", 0.05, 1.0)]
    cal = calibration_by_grade(y, p, grades, 0.05, 0.01, "master scale")
    low, high = cal.grades
    assert low.pd == 0.03 and high.pd == pytest.approx(p[p >= 0.05].mean())
    assert low.n + high.n == len(y) == cal.portfolio.n and cal.outside_scale == 0
    assert cal.portfolio.light == "green"  # the labels follow the PDs
    too_low = calibration_by_grade(y, p / 2, grades, 0.05, 0.01, "master scale")
    assert too_low.portfolio.light == "red"


def test_grade_psi_is_the_monitoring_psi_of_the_grade_names():
    train, test = RNG.beta(1, 12, 3000), RNG.beta(1, 6, 1000)
    grades = quantile_grades(train, 5)
    st = grade_stability(train, test, grades, 0.1, 0.25)
    names = np.array([g.name for g in grades])
    assert st.psi == pytest.approx(psi_categorical(pd.Series(names[assign(train, grades)]),
                                                   pd.Series(names[assign(test, grades)])))
    assert st.light == "red" and sum(s.test_share for s in st.shares) == pytest.approx(1)
    same = grade_stability(train, train[:1000], grades, 0.1, 0.25)
    assert same.psi < 0.1 and same.light == "green"


def _data(n=1500):
    X = RNG.normal(size=(n, 4)) * [1, 10, 1, 1]
    y = (RNG.random(n) < 1 / (1 + np.exp(-(X[:, 0] + 0.03 * X[:, 1] - 2)))).astype(int)
    return X, y


def test_importance_of_each_kind_of_model():
    X, y = _data()
    names = ["a", "b", "c", "d"]
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression().fit(scaler.transform(X), y)
    imp = importance_of([scaler, lr], X, y, names, 2, 0)
    assert imp.method == "standardised_coefficients"
    assert {f.feature: f.importance for f in imp.features} == pytest.approx(
        dict(zip(names, lr.coef_[0], strict=True)))
    # without a scaler: the coefficient per unit times the feature's standard deviation
    raw = LogisticRegression().fit(X, y)
    imp = importance_of([raw], X, y, names, 2, 0)
    assert {f.feature: f.importance for f in imp.features} == pytest.approx(
        dict(zip(names, raw.coef_[0] * X.std(axis=0), strict=True)))
    xgb = XGBClassifier(n_estimators=20, max_depth=2).fit(X, y)
    imp = importance_of([xgb], X, y, names, 2, 0)
    contribs = xgb.get_booster().predict(__import__("xgboost").DMatrix(X.astype(np.float32)),
                                         pred_contribs=True)
    assert imp.method == "xgboost_contributions" and imp.features[0].feature == "a"
    assert imp.features[0].importance == pytest.approx(np.abs(contribs[:, 0]).mean(), rel=1e-5)
    forest = RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    imp = importance_of([forest], X, y, names, 3, 0)
    ref = permutation_importance(forest, X, y, scoring="roc_auc", n_repeats=3, random_state=0)
    assert imp.method == "permutation" and imp.features[0].feature == "a"
    assert {f.feature: f.importance for f in imp.features} == pytest.approx(
        dict(zip(names, ref.importances_mean, strict=True)))
    with pytest.raises(ValueError, match="single class"):
        importance_of([forest], X, np.zeros(len(y), int), names, 1, 0)


def test_segments_follow_the_spec(spec):
    n = 600
    X = pd.DataFrame({"gender": RNG.choice(["M", "F"], n),
                      "marital_status": RNG.choice(["Married", "Single"], n),
                      "loan_purpose": RNG.choice(["Home", "Auto", None], n),
                      "loan_type": "Secured", "residence_type": "Owned",
                      "age": RNG.integers(18, 70, n)})
    y, p = scored(n)
    out = {s.field: s for s in segments(X, y, p, spec, bins=3)}
    assert [s.kind for s in out.values()].count("fairness") == 2
    assert set(out) == {"gender", "marital_status", "loan_purpose", "loan_type",
                        "residence_type", "age"}
    assert {g.group for g in out["loan_purpose"].groups} == {"Home", "Auto", "unknown"}
    assert len(out["age"].groups) == 3 and sum(g.n for g in out["age"].groups) == n
    assert out["age"].groups[0].group.startswith("(17.999")  # bins from the youngest up
    home = next(g for g in out["loan_purpose"].groups if g.group == "Home")
    mask = (X["loan_purpose"] == "Home").to_numpy()
    assert home.roc_auc == pytest.approx(roc_auc_score(y[mask], p[mask]))


def test_a_segment_must_be_a_column(tmp_path):
    base = load_spec("german_credit").model_dump(mode="json")
    with pytest.raises(ValueError, match="segment 'nope'"):
        DatasetSpec.model_validate({**base, "segments": ["nope"]})
    with pytest.raises(ValueError, match="segment 'creditability'"):
        DatasetSpec.model_validate({**base, "segments": ["creditability"]})
    assert SpecError  # the loader wraps the same message


def test_markdown_section_and_round_trip():
    y, p = scored(800)
    grades = quantile_grades(p, 4)
    report = ValidationReport(
        model="xgboost", test_rows=len(y), discrimination=discrimination(y, p), segments=[],
        calibration=calibration_by_grade(y, p, grades, 0.05, 0.01, "test grades"),
        stability=grade_stability(p, p, grades, 0.1, 0.25), importance=None,
        importance_note="not computed here")
    again = ValidationReport.loads(report.dumps(), "validation_report.json")
    assert again == report
    md = validation_markdown(report)
    assert "## Validation report" in md and "test grades" in md and "not computed here" in md
    assert md.count("| Q") == 8  # each grade in the calibration and the stability tables
