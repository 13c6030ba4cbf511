"""The points scorecard: bins that keep their trends, a plan that bins as optbinning does, points
that add up to the score, reasons from the points lost, the points table as CSV."""

import csv
import io
import math

import numpy as np
import pytest

from credit_risk.config import Settings
from credit_risk.pipeline.bundle import compile_bundle, frame_records, plan_of
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.scorecard_bundle import (
    COLUMNS,
    UNSEEN,
    points_csv,
    points_table,
    scorecard_artifacts,
)
from credit_risk.pipeline.train import split, train_candidate
from credit_risk.scoring.plan import PlanError, ScoringPlan
from credit_risk.scoring.reasons import ReasonExplainer
from credit_risk.scoring.scorecard import ScorecardHead
from credit_risk.scoring.scorer import ScoreScaling
from credit_risk.spec.binning import Binning

SETTINGS = Settings(search_iterations=2, cv_folds=3, scorecard_max_bins=6)


@pytest.fixture(scope="module")
def fitted(spec, tables):
    """A scorecard trained on 2,400 applications, `age` binned by its own spec entry."""
    columns = dict(spec.columns)
    columns["age"] = columns["age"].model_copy(
        update={"binning": Binning(trend="decreasing", max_bins=3)})
    spec = spec.model_copy(update={"columns": columns})
    df = assemble(spec, tables)
    y = np.asarray(spec.is_default(df[spec.target.column]), dtype=int)
    X_train, X_test, y_train, _ = split(df.drop(columns=[spec.target.column]), y, 0.2, 1)
    candidate = train_candidate("scorecard", X_train, y_train, spec, SETTINGS)
    return candidate, X_train, X_test


def _rates(binning, name):
    table = binning.table(name)
    n_bins = len(binning.binned(name).splits) + (0 if binning.binned(name).dtype ==
                                                 "categorical" else 1)
    return table["Event rate"].to_numpy()[:n_bins], table["Count"].to_numpy()[:n_bins]


def test_bins_keep_the_spec_trends_and_limits(fitted):
    candidate, X_train, _ = fitted
    binning = candidate.model.pipeline.named_steps["binning"]
    n = len(X_train)
    for name in ("credit_utilization_ratio", "loan_to_income", "delinquency_ratio"):
        rates, counts = _rates(binning, name)  # `monotone: increasing` in the spec
        assert len(rates) >= 2 and (np.diff(rates) >= 0).all(), (name, rates)
        assert len(rates) <= 6 and (counts >= math.floor(0.05 * n)).all()
    rates, _ = _rates(binning, "age")  # its own `binning: {trend: decreasing, max_bins: 3}`
    assert len(rates) <= 3 and (np.diff(rates) <= 0).all()
    for name in ("income", "enquiry_count"):  # no trend given: monotone, either way
        diffs = np.diff(_rates(binning, name)[0])
        assert (diffs >= 0).all() or (diffs <= 0).all()
    assert candidate.params["calibration"] == "sigmoid"
    assert "smote" not in candidate.model.pipeline.named_steps  # WoE needs no resampling


def test_higher_utilisation_never_lowers_the_pd(fitted):
    plan = plan_of(fitted[0].model)
    base = frame_records(fitted[2].head(1))[0]
    pd_ = plan.predict_records([dict(base, credit_utilization_ratio=u) for u in range(0, 101, 5)])
    assert (np.diff(pd_) >= 0).all() and pd_[-1] > pd_[0]


def test_the_plan_bins_and_scores_as_optbinning_and_the_regression(fitted):
    candidate, _, X_test = fitted
    model = candidate.model
    plan = plan_of(model)
    assert plan.kind == "scorecard" and plan.scorecard is not None
    rows = plan.rows(frame_records(X_test))
    woe = model.pipeline.named_steps["binning"].transform(model.features.transform(X_test))
    coef = model.pipeline.named_steps["model"].coef_[0]
    np.testing.assert_allclose(plan.scorecard.log_odds(rows), woe * coef, rtol=0, atol=1e-12)
    np.testing.assert_allclose(plan.predict_raw(rows), model.predict_raw(X_test), rtol=0,
                               atol=1e-9)
    np.testing.assert_allclose(plan.predict(rows), model.predict_pd(X_test), rtol=0, atol=1e-9)
    # a category unseen in training: binned as optbinning bins it
    odd = X_test.head(3).assign(loan_purpose="Boat")
    np.testing.assert_allclose(plan.predict_records(frame_records(odd)), model.predict_pd(odd),
                               rtol=0, atol=1e-9)


def _points_of_rows(plan, table, rows):
    """Each row's points from the table, by the bins the plan puts it in."""
    by_field = {}
    for r in table:
        by_field.setdefault(r["field"], []).append(r["points"])
    total = np.zeros(len(rows))
    for field in plan.scorecard.fields:
        points = np.array(by_field[field.name])
        if field.categorical:
            block = rows[:, field.columns]
            index = np.where(block.max(axis=1) > 0.5, field.bins[block.argmax(axis=1)], -1)
        else:
            index = np.searchsorted(field.edges, rows[:, field.columns[0]], side="right")
        total += points[index]  # -1: the last row, any other category
    return total


def test_points_add_up_to_the_score_the_api_shows(fitted):
    candidate, _, X_test = fitted
    scaling = ScoreScaling(base_score=600, base_odds=30, pdo=40)
    table = points_table(candidate.model, scaling)
    plan = plan_of(candidate.model)
    rows = plan.rows(frame_records(X_test))
    pd_ = plan.predict(rows)
    exact = scaling.offset + scaling.factor * np.log((1 - pd_) / pd_)
    got = _points_of_rows(plan, table, rows)
    # the PD floor caps the safest rows' PD, so their score stops at the floor's
    floor = candidate.model.calibrator.spec["pd_floor"]
    free = (pd_ > floor) & (pd_ < 1 - floor)
    assert 0 < free.sum() < len(pd_)
    np.testing.assert_allclose(got[free], exact[free], rtol=0, atol=1e-6)
    assert (np.clip(np.rint(got), 300, 900)[free] == scaling.score(pd_)[free]).all()
    assert (got[~free] >= exact[~free] - 1e-6).all()
    # the best bin of a field is the one of the lowest default rate (a negative coefficient)
    util = [r for r in table if r["field"] == "credit_utilization_ratio"]
    assert util[0]["points"] == max(r["points"] for r in util)
    assert [r["bin"] for r in table if r["field"] == "loan_type"][-1] == UNSEEN


def test_reasons_are_the_points_lost_against_the_best_bin(fitted, spec):
    candidate, _, X_test = fitted
    plan = plan_of(candidate.model)
    records = frame_records(X_test.head(50))
    rows = plan.rows(records)
    labels = {n: c.label for n, c in spec.columns.items() if c.label}
    labels |= {n: d.label for n, d in spec.derived.items() if d.label}
    units = {n: c.unit for n, c in spec.columns.items()}
    explainer = ReasonExplainer(plan, labels, units)
    said = explainer.explain(rows, records, top=3)
    lost = plan.scorecard.lost(rows) @ explainer._to_group
    for i, reasons in enumerate(said):
        expected = np.argsort(-lost[i])[:len(reasons)]
        assert [r["feature"] for r in reasons] == [explainer.group_names[k] for k in expected]
        assert all(r["impact"] > 0 for r in reasons)
    risky = dict(records[0], credit_utilization_ratio=99.0)
    first = explainer.explain(plan.rows([risky]), [risky], top=1)[0][0]
    assert first["feature"] == "credit_utilization_ratio"
    assert first["text"] == "Credit utilisation (99%) raises the risk"
    assert explainer.explain_texts(plan.rows([risky]), {k: [v] for k, v in risky.items()},
                                   top=1) == [first["text"]]


def test_the_points_table_exports_as_csv_and_goes_in_the_card(fitted):
    candidate, _, _ = fitted
    scaling = ScoreScaling()
    table = points_table(candidate.model, scaling)
    read = list(csv.DictReader(io.StringIO(points_csv(table).decode())))
    assert tuple(read[0]) == COLUMNS and len(read) == len(table)
    assert [float(r["points"]) for r in read] == [r["points"] for r in table]
    util = [r for r in read if r["field"] == "credit_utilization_ratio"]
    assert util[0]["lower"] == "" and float(util[0]["upper"]) == float(util[1]["lower"])
    section, files = scorecard_artifacts(candidate.model, scaling, SETTINGS.scorecard)
    assert files == {"scorecard.csv": points_csv(table)}
    assert "## Scorecard" in section and "| credit_utilization_ratio |" in section
    assert "suspiciously strong (IV above 0.5)" in section  # utilisation drives the data
    assert "weak (IV below 0.02)" in section


def test_a_malformed_scorecard_head_is_refused(fitted):
    files = compile_bundle(fitted[0].model)
    import json

    plan = json.loads(files["plan.json"])
    names = plan["features"]["names"]
    ScorecardHead(plan["head"], names)  # as compiled: fine
    numeric = next(f for f in plan["head"]["fields"] if "edges" in f and len(f["edges"]) > 1)
    cases = [
        (dict(numeric, edges=numeric["edges"][::-1]), "not increasing"),
        (dict(numeric, log_odds=numeric["log_odds"][:-1]), "one more bin than edges"),
        (dict(numeric, columns=[len(names)]), "outside the"),
        (dict(numeric, edges=[*numeric["edges"][:-1], "x"]), "not a list of numbers"),
        (dict(numeric, columns=[numeric["columns"][0] + 1]), "reads the features"),
    ]
    for bad, message in cases:
        head = dict(plan["head"], fields=[bad if f is numeric else f
                                          for f in plan["head"]["fields"]])
        with pytest.raises(PlanError, match=message):
            ScoringPlan({**plan, "head": head}, {})
