"""Inputs beyond the training range are capped to it (issue 8, item 6), and reported."""

import joblib
import pytest

from credit_risk.pipeline.bundle import plan_of
from credit_risk.registry.store import Registry
from credit_risk.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def scorers(trained):
    """A Scorer per candidate of the fixture run (logistic regression and XGBoost)."""
    settings, version = trained
    manifest = Registry(settings.registry.url).manifest(version)
    return {p.stem: Scorer(plan_of(joblib.load(p).model), manifest)
            for p in settings.data.runs_dir.glob("*/candidates/*.joblib")}


def _delinquent(scorer):
    """The issue's example: every month delinquent, 5000 days past due, utilisation 100."""
    app = {f["name"]: f["default"] for f in scorer.fields}
    return {**app, "delinquent_months": 60, "total_loan_months": 60, "total_dpd": 5000,
            "credit_utilization_ratio": 100}


def _pd(scorer, app):
    return scorer.score_records([app])[0]["probability_of_default"]


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_a_huge_bank_balance_does_not_turn_a_delinquent_applicant_excellent(scorers, name):
    scorer = scorers[name]
    app = _delinquent(scorer)
    hi = next(c for c in scorer.plan.plan["features"]["numeric"]
              if c["name"] == "bank_balance_at_application")["max"]
    assert hi < 1e10  # the spec allows far more than the training data holds
    result = scorer.score_records([{**app, "bank_balance_at_application": 1e10}])[0]
    at_edge = _pd(scorer, {**app, "bank_balance_at_application": hi})
    assert result["probability_of_default"] == at_edge
    assert result["rating"] != "Excellent"
    capped = {w["field"]: w for w in result["warnings"]}
    without = scorer.score_records([app])[0]["warnings"]
    assert set(capped) - {w["field"] for w in without} == {"bank_balance_at_application"}
    warning = capped["bank_balance_at_application"]
    assert warning["value"] == 1e10 and warning["used"] == hi
    assert "training range" in warning["message"]


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_no_field_beyond_the_range_moves_the_pd_more_than_its_edge(scorers, name):
    scorer = scorers[name]
    for base in (_delinquent(scorer), {f["name"]: f["default"] for f in scorer.fields}):
        for column in scorer.plan.plan["features"]["numeric"]:
            field, lo, hi = column["name"], column["min"], column["max"]
            for edge, beyond in ((hi, hi + 10 * (abs(hi) + 1)), (lo, lo - 10 * (abs(lo) + 1))):
                if beyond in column["missing"]:
                    continue
                assert _pd(scorer, {**base, field: beyond}) == _pd(scorer, {**base, field: edge}), \
                    (field, beyond)


def test_inputs_within_the_range_carry_no_warning(scorers):
    scorer = scorers["logistic_regression"]
    app = {f["name"]: f["default"] for f in scorer.fields}
    results = scorer.score_records([app, app])
    assert [r["warnings"] for r in results] == [[], []]


def test_missing_inputs_are_reported_with_the_value_used(scorers):
    """Income 0 means "missing" in the training data (the spec's missing_values): it is scored
    as the typical income, and the answer says so, as for null."""
    scorer = scorers["logistic_regression"]
    app = {f["name"]: f["default"] for f in scorer.fields}
    median = next(c for c in scorer.plan.plan["features"]["numeric"]
                  if c["name"] == "income")["median"]
    for value, said in ((0, "0 means missing"), (None, "missing")):
        results = scorer.score_records([{**app, "income": value}] * 2)  # batch
        single = scorer.score_records([{**app, "income": value}])[0]
        for r in (*results, single):
            warning = next(w for w in r["warnings"] if w["field"] == "income")
            assert warning["used"] == median and warning["message"].startswith(said)
            assert r["probability_of_default"] == _pd(scorer, {**app, "income": median})
    residence = scorer.score_records([{**app, "residence_type": None}])[0]["warnings"]
    assert [w["field"] for w in residence] == ["residence_type"]
