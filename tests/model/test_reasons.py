"""Reasons: the features pushing the PD up, for each kind of model."""

import joblib
import numpy as np
import pytest

from credit_risk.pipeline.bundle import plan_of
from credit_risk.pipeline.train import train_candidate
from credit_risk.registry import Registry
from credit_risk.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def models(trained, spec):
    """The fitted model of every candidate of the fixture run, plus a small random forest."""
    settings, version = trained
    run = next(settings.data.runs_dir.iterdir())
    out = {}
    for path in (run / "candidates").glob("*.joblib"):
        candidate = joblib.load(path)
        out[candidate.name] = candidate.model
    import pandas as pd

    train = pd.read_parquet(run / "split" / "train.parquet")
    rf = train_candidate("random_forest", train.drop(columns=["__target__"]),
                         train["__target__"].to_numpy(), spec, settings)
    out["random_forest"] = rf.model
    card = train_candidate("scorecard", train.drop(columns=["__target__"]),
                           train["__target__"].to_numpy(), spec,
                           settings.model_copy(update={"scorecard_max_bins": 6}))
    out["scorecard"] = card.model
    return out


@pytest.fixture(scope="module")
def scorers(trained, models):
    """A Scorer per model, from its compiled pure-data plan."""
    settings, version = trained
    manifest = Registry(settings.registry.url).manifest(version)
    return {name: Scorer(plan_of(model), manifest) for name, model in models.items()}


def _risky(scorer):
    app = {f["name"]: f["default"] for f in scorer.fields}
    return {**app, "credit_utilization_ratio": 95, "delinquent_months": 12, "total_dpd": 480}


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost", "random_forest"])
def test_risky_applicant_gets_the_real_drivers(scorers, name):
    scorer = scorers[name]
    reasons = scorer.score_records([_risky(scorer)])[0]["reasons"]
    assert 1 <= len(reasons) <= 3
    impacts = [r["impact"] for r in reasons]
    assert all(i > 0 for i in impacts) and impacts == sorted(impacts, reverse=True)
    drivers = {"credit_utilization_ratio", "delinquency_ratio", "avg_dpd_per_delinquency"}
    assert reasons[0]["feature"] in drivers, reasons


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost", "random_forest"])
def test_a_single_driver_is_the_first_reason_in_plain_words(scorers, name):
    """Only the utilisation differs from a typical applicant: it must be the first reason."""
    scorer = scorers[name]
    typical = {f["name"]: f["default"] for f in scorer.fields}
    reasons = scorer.score_records([{**typical, "credit_utilization_ratio": 95}])[0]["reasons"]
    assert reasons and reasons[0]["feature"] == "credit_utilization_ratio", reasons
    assert reasons[0]["text"] == "Credit utilisation (95%) raises the risk"
    assert reasons[0]["impact"] > 0


def test_linear_contributions_add_up_to_the_log_odds_difference(scorers, models):
    scorer = scorers["logistic_regression"]
    explainer = scorer.explainer
    row = scorer.plan.rows([_risky(scorer)])
    head = models["logistic_regression"].pipeline[2:]
    logit = head.decision_function(row)[0] - head.decision_function(explainer.reference[None])[0]
    assert explainer.contributions(row).sum() == pytest.approx(logit)


def test_one_hot_columns_are_grouped_into_their_field(scorers):
    explainer = scorers["xgboost"].explainer
    assert "loan_purpose" in explainer.group_names
    assert not any("=" in g for g in explainer.group_names)
    rows = np.vstack([explainer.reference, explainer.reference])
    assert explainer.contributions(rows).shape == (2, len(explainer.group_names))


def test_typical_applicant_has_few_or_no_reasons(scorers):
    scorer = scorers["logistic_regression"]
    reasons = scorer.explainer.explain(scorer.explainer.reference[None], [{}], top=3)[0]
    assert reasons == []


def test_saabas_trees_equal_xgboosts_approx_contribs(scorers, models, tables, spec):
    import xgboost as xgb

    from credit_risk.pipeline.ingest import assemble
    from credit_risk.scoring.reasons import SaabasTrees

    scorer = scorers["xgboost"]
    booster = plan_of(models["xgboost"]).booster
    frame = assemble(spec, tables).head(200)
    rows = models["xgboost"].features.transform(frame)
    rows[:20, 0] = np.nan  # missing values take each split's default branch
    ours = SaabasTrees(booster).contributions(rows)
    theirs = booster.predict(xgb.DMatrix(rows.astype(np.float32)), pred_contribs=True,
                             approx_contribs=True)[:, :-1]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # The explainer gives the same reasons for one row and for a batch.
    one = [scorer.explainer.explain(rows[i:i + 1], [{}], 3)[0] for i in range(40)]
    batch = scorer.explainer.explain(rows[:40], [{}] * 40, 3)
    assert [[r["feature"] for r in x] for x in one] == [[r["feature"] for r in x] for x in batch]
    np.testing.assert_allclose([r["impact"] for x in one for r in x],
                               [r["impact"] for x in batch for r in x], atol=2e-4)


def _reason_for(scorer, feature, record):
    """The reason the linear model gives when only `feature` differs from a typical applicant
    (raising the PD), for an application `record` as it was sent."""
    explainer = scorer.explainer
    names = scorer.plan.features.names
    j = names.index(feature)
    row = explainer.reference.copy()
    row[j] += 1 / scorer.plan.linear_w[j]  # away from typical: +1 on the log-odds
    [reasons] = explainer.explain(row[None], [record], top=1)
    assert reasons and reasons[0]["feature"] == feature, reasons
    return reasons[0]


def test_reasons_say_units_in_the_singular_for_one(scorers):
    scorer = scorers["logistic_regression"]
    one = _reason_for(scorer, "years_at_current_address", {"years_at_current_address": 1})
    assert one["text"] == "Years at current address (1 year) raises the risk"
    two = _reason_for(scorer, "years_at_current_address", {"years_at_current_address": 2})
    assert two["text"] == "Years at current address (2 years) raises the risk"
    money = _reason_for(scorer, "bank_balance_at_application",
                        {"bank_balance_at_application": 1_250_000.5})
    assert money["text"] == "Bank balance at application (1,250,000.50 INR) raises the risk"


def test_a_value_not_given_is_not_provided_never_the_typical_value(scorers):
    scorer = scorers["logistic_regression"]
    missing = _reason_for(scorer, "income", {"income": None})
    assert missing["text"] == "Annual income (not provided) raises the risk"
    assert missing["value"] is None
    code = _reason_for(scorer, "income", {"income": 0})  # the spec's missing code
    assert code["text"] == "Annual income (not provided) raises the risk"
    derived = _reason_for(scorer, "loan_to_income", {"income": None, "loan_amount": 2e6})
    assert derived["text"] == "Loan to income (annual income not provided) raises the risk"
    assert derived["value"] is None
    given = _reason_for(scorer, "loan_to_income", {"income": 1e6, "loan_amount": 2e6})
    assert given["text"].startswith("Loan to income (") and "not provided" not in given["text"]


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_one_application_and_a_batch_get_the_same_words(scorers, name):
    import copy

    scorer = copy.copy(scorers[name])
    scorer.n_reasons = 30  # every feature raising the PD
    typical = {f["name"]: f["default"] for f in scorer.fields}
    records = [{**typical, "income": None, "loan_amount": 5e7}, {**_risky(scorer), "income": 0},
               {**typical, "years_at_current_address": 1, "credit_utilization_ratio": 90},
               {**typical, "residence_type": None, "delinquent_months": 30, "total_dpd": 900}]
    batch = scorer.score_records(records)
    single = [scorer.score_records([r])[0] for r in records]
    assert [[x["text"] for x in r["reasons"]] for r in single] == \
        [[x["text"] for x in r["reasons"]] for r in batch]
    texts = [x["text"] for x in batch[0]["reasons"]]
    assert "Loan to income (annual income not provided) raises the risk" in texts, texts
    assert not any(t.startswith("Annual income (") and "not provided" not in t
                   for r in batch[:2] for t in (x["text"] for x in r["reasons"]))


@pytest.fixture(scope="module")
def messy(spec, tables):
    """3,000 applications of the fixture's data with every kind of value the wording
    distinguishes: missing (None, NaN, the missing code 0), a unit of one, big numbers."""
    from credit_risk.pipeline.bundle import frame_records
    from credit_risk.pipeline.ingest import assemble

    records = frame_records(assemble(spec, tables))
    for i, r in enumerate(records):
        if i % 7 == 0:
            r["income"] = None
        if i % 11 == 0:
            r["income"] = 0
        if i % 13 == 0:
            r["residence_type"] = None
        if i % 17 == 0:
            r["income"] = float("nan")
        if i % 5 == 0:
            r["years_at_current_address"] = 1
        if i % 9 == 0:
            r["credit_utilization_ratio"] = 99.5
        if i % 19 == 0:
            r["delinquent_months"], r["total_dpd"] = 40, 2_000
    return records


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost", "random_forest"])
def test_batch_reasons_equal_the_row_by_row_wording(scorers, messy, name):
    """The vectorised wording gives today's reasons exactly: the same features, values,
    impacts and texts in the same order, ties (rounded to 2 decimals: many) included."""
    from tests.model.reasons_reference import reference_explain

    explainer = scorers[name].explainer
    records = [{k: v for k, v in r.items() if k in explainer.plan.features.inputs
                or k in {c["name"] for c, _, _ in explainer.plan.features.categorical}}
               for r in messy]
    rows = explainer.plan.features.prepare(records)[0]
    contrib = explainer.contributions(rows)
    for c, top in ((contrib, 3), (np.round(contrib, 2), 3), (contrib, 30), (contrib, 1)):
        expected = reference_explain(explainer, rows, records, top, c)
        assert explainer.explain(rows, records, top, contributions=c) == expected
    expected = reference_explain(explainer, rows, records, 3, contrib)
    assert sum(map(len, expected)) > len(records)  # most rows have reasons
    assert any("not provided" in r["text"] for x in expected for r in x)
    columns = {k: [r.get(k) for r in records] for k in records[0]}
    assert explainer.explain_texts(rows, columns, 3) == \
        ["; ".join(r["text"] for r in x) for x in expected]


def test_path_sums_are_xgboosts_approx_contribs_and_its_margins(scorers, messy):
    """A batch's contributions come from the path sums (one inplace_predict): XGBoost's own
    approx_contribs to float32 rounding, and the same PDs as without reasons, bit for bit."""
    import copy

    import xgboost as xgb

    scorer = scorers["xgboost"]
    explainer = scorer.explainer
    assert explainer.path_sums is not None and explainer.path_sums.margin_exact
    records = [{f["name"]: r.get(f["name"]) for f in scorer.fields} for r in messy]
    rows = scorer.plan.features.prepare(records)[0]
    theirs = explainer._booster.predict(xgb.DMatrix(rows.astype(np.float32)), pred_contribs=True,
                                        approx_contribs=True)[:, :-1] @ explainer._to_group
    np.testing.assert_allclose(explainer.contributions(rows), theirs, rtol=0, atol=1e-5)
    plain = copy.copy(scorer)
    plain.n_reasons = 0
    assert [r["probability_of_default"] for r in scorer.score_records(records)] == \
        [r["probability_of_default"] for r in plain.score_records(records)]


def test_without_path_sums_the_reasons_are_xgboosts_approx_contribs(scorers, messy, monkeypatch):
    """When XGBoost cannot build the path sums' booster, its approx_contribs serve."""
    from credit_risk.scoring import reasons
    from credit_risk.scoring.reasons import ReasonExplainer

    def refuse(*args, **kwargs):
        raise ValueError("no vector leaves here")

    monkeypatch.setattr(reasons, "PathSums", refuse)
    fast = scorers["xgboost"].explainer
    slow = ReasonExplainer(fast.plan, fast.labels, fast.wording.units)
    assert slow.path_sums is None
    records = [{k: r.get(k) for k in fast.plan.features.inputs} for r in messy[:500]]
    rows = fast.plan.features.prepare(records)[0]
    assert slow.raw_and_contributions(rows) is None
    np.testing.assert_allclose(slow.contributions(rows), fast.contributions(rows), atol=1e-5)


def test_odd_values_are_worded_as_row_by_row(scorers, messy):
    """Values the API's validation would refuse but `explain` may still see (a bool, a list,
    a number as text, a padded category, NaN) get the words the row-by-row code gave them."""
    from tests.model.reasons_reference import reference_explain

    explainer = scorers["logistic_regression"].explainer
    records = [dict(r) for r in messy[:400]]
    rows = explainer.plan.features.prepare(records)[0]
    contrib = explainer.contributions(rows)
    odd = [True, False, 1, 1.0, [3], "7", " 0 ", float("nan"), None, 0, -1, 2.5e9]
    for i, r in enumerate(records):
        for name in ("years_at_current_address", "income", "residence_type", "loan_amount",
                     "credit_utilization_ratio"):
            r[name] = odd[(i + len(name)) % len(odd)]
    assert explainer.explain(rows, records, 30, contributions=contrib) == \
        reference_explain(explainer, rows, records, 30, contrib)


KINDS = ["logistic_regression", "xgboost", "random_forest", "scorecard"]


def _fields_of(scorer, records):
    return [{f["name"]: r.get(f["name"]) for f in scorer.fields} for r in records]


@pytest.mark.parametrize("name", KINDS)
def test_one_application_gets_the_reasons_of_its_row_in_a_batch(scorers, messy, name):
    """`explain` of one row (its own fast path) gives what the batch gives that row: the same
    features, values, impacts and texts in the same order, ties and values not given included."""
    explainer = scorers[name].explainer
    records = _fields_of(scorers[name], messy[:600])
    rows = explainer.plan.features.prepare(records)[0]
    contrib = explainer.contributions(rows)
    tied = np.round(contrib, 2)  # many ties among a row's top features
    assert any(len(set(r)) < len(r) for r in np.sort(tied, axis=1)[:, -3:].tolist())
    for c, top in ((contrib, 3), (tied, 3), (contrib, 30), (tied, 1)):
        batch = explainer.explain(rows, records, top, contributions=c)
        one = [explainer.explain(rows[i:i + 1], [r], top, contributions=c[i:i + 1])[0]
               for i, r in enumerate(records)]
        assert one == batch
    assert any("not provided" in x["text"] for r in batch for x in r)


@pytest.mark.parametrize("name", KINDS)
def test_one_application_scores_as_in_a_batch(scorers, messy, name):
    """`score_records` of one application (its features, model and reasons on one-row paths)
    equals its result in a batch: PD, score, grade, reasons and warnings. Batches of up to
    TreeEnsemble.MAX_ROWS, whose XGBoost contributions come from the same walk of the trees."""
    from credit_risk.scoring.trees import TreeEnsemble

    scorer = scorers[name]
    records = _fields_of(scorer, messy[:400])
    records[1]["income"] = -0.0  # a signed zero: the missing code 0, as in NumPy
    records[2]["bank_balance_at_application"] = 1e15  # capped to the training range
    size = TreeEnsemble.MAX_ROWS
    batch = [x for i in range(0, len(records), size) for x in scorer.score_records(
        records[i:i + size])]
    one = [scorer.score_records([r])[0] for r in records]
    assert one == batch
    assert any(w["message"].startswith("outside the training range") for w in one[2]["warnings"])


def test_one_application_gets_the_feature_row_of_a_batch(scorers, messy):
    """`prepare` of one application (in Python floats) gives NumPy's row to the bit and the
    same warnings: missing values and codes, signed zeros, infinities, values beyond the
    training range, ints, and values NumPy converts (text, bools)."""
    features = scorers["xgboost"].plan.features
    numbers = [None, float("nan"), 0, -0.0, 0.0, 1, -5, 1e300, float("inf"), float("-inf"),
               2**53, 99.5, -1e-300]
    converted = [True, "7", " 3 ", 2**60, 2**53 + 1]  # NumPy's path: its conversions
    records = _fields_of(scorers["xgboost"], messy[:500])
    for i, r in enumerate(records):
        for k, name in enumerate(features.inputs):
            if (i + k) % 3 == 0:
                r[name] = numbers[(i * 7 + k) % len(numbers)]
        if i % 4 == 0:
            r[features.inputs[i % len(features.inputs)]] = converted[i % len(converted)]
    assert sum(features._prepare_one(r) is not None for r in records) > len(records) / 2
    for r in records:
        one, warned = features.prepare([r])
        two, warned_two = features.prepare([r, r])
        assert one.tobytes() == two[:1].tobytes() and warned == warned_two[:1], r


def test_the_walk_gives_the_sums_of_the_walk_node_by_node(scorers, messy):
    """The tree walk by edges gives the node-by-node walk's margin and contributions to the
    bit (the same additions in the same order), missing values included."""
    from tests.model.reasons_reference import reference_walk

    scorer = scorers["xgboost"]
    trees = scorer.plan.trees
    rows = scorer.plan.features.prepare(_fields_of(scorer, messy[:300]))[0]
    rows[::4, 1] = np.nan
    rows[::9] = np.nan
    for row in rows:
        margin, contributions = trees.walk(row)
        theirs = reference_walk(trees, row)
        assert margin == theirs[0] and contributions.tobytes() == theirs[1].tobytes()


def test_a_forests_occlusion_of_a_few_rows_in_one_call_is_the_group_by_group_one(
        scorers, messy, monkeypatch):
    """A few rows' occlusion (every group's copy through the forest at once) gives the
    contributions of one call of the forest per group, to the bit."""
    from credit_risk.scoring import reasons

    explainer = scorers["random_forest"].explainer
    rows = explainer.plan.features.prepare(_fields_of(scorers["random_forest"], messy[:40]))[0]
    at_once = [explainer.contributions(rows[i:i + n]) for i, n in ((0, 1), (1, 5), (6, 16))]
    monkeypatch.setattr(reasons, "OCCLUDED_ROWS", 0)
    one_by_one = [explainer.contributions(rows[i:i + n]) for i, n in ((0, 1), (1, 5), (6, 16))]
    assert [c.tobytes() for c in at_once] == [c.tobytes() for c in one_by_one]
    assert all(c.shape[1] == len(explainer.group_names) and (c != 0).any() for c in at_once)


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_batch_reasons_of_applications_giving_every_value_equal_the_row_by_row_wording(
        scorers, messy, name):
    """With every input given (derived features worded by value alone) and contributions
    tied across the top-k boundary (small integers: many equal values in a row), the batch
    gives the row-by-row reasons; one-hot fields and derived features among them."""
    from tests.model.reasons_reference import reference_explain

    explainer = scorers[name].explainer
    features = explainer.plan.features
    records = [r for r in _fields_of(scorers[name], messy[:1500])
               if not any(features.is_absent(k, v) for k, v in r.items()
                          if k in features.inputs)][:500]
    assert len(records) > 100
    rows = features.prepare(records)[0]
    contrib = explainer.contributions(rows)
    tied = np.random.default_rng(7).integers(-2, 3, size=contrib.shape).astype(float)
    assert (np.sort(tied, axis=1)[:, -4] == np.sort(tied, axis=1)[:, -3]).mean() > 0.3
    for c, top in ((contrib, 3), (tied, 3), (tied, 1), (contrib, 30)):
        expected = reference_explain(explainer, rows, records, top, c)
        assert explainer.explain(rows, records, top, contributions=c) == expected
    shown = {r["feature"] for x in expected for r in x}
    assert shown & set(explainer._derived_index) and "loan_purpose" in shown
    assert not any("not provided" in r["text"] for x in expected for r in x)


def test_a_batch_with_one_reason_or_none_at_all(scorers, messy):
    """A batch whose contributions give no row a reason, or only one row one reason."""
    explainer = scorers["xgboost"].explainer
    records = _fields_of(scorers["xgboost"], messy[:4])
    rows = explainer.plan.features.prepare(records)[0]
    none = -np.ones((4, len(explainer.group_names)))
    assert explainer.explain(rows, records, 3, contributions=none) == [[], [], [], []]
    assert explainer.explain_texts(rows, {}, 3, contributions=none) == [""] * 4
    one = none.copy()
    one[2, explainer.group_names.index("loan_purpose")] = 0.5
    reasons = explainer.explain(rows, records, 3, contributions=one)
    assert [len(r) for r in reasons] == [0, 0, 1, 0]
    assert reasons[2][0]["feature"] == "loan_purpose" and reasons[2][0]["impact"] == 0.5
    assert reasons[2][0]["value"] == records[2]["loan_purpose"]


def test_none_absent_agrees_with_is_absent_value_by_value(scorers):
    """`none_absent` (a column of numbers at once) is True only when no value is absent, and
    exactly that for ints and floats a float can hold."""
    features = scorers["xgboost"].plan.features
    plain = [[1, 2.5, 3], [1, 0], [1.0, 0.0], [7, -0.0], [2.0, float("nan")], [float("inf")],
             [2**53 + 1, 7], [10**400, 3], []]
    odd = [[1, None], [1, True], [1, "7"], [1, " 0 "], [np.float64(1.0)], [1.5, 10**400],
           [[3], 1]]
    for values in plain + odd:
        exact = not any(features.is_absent("income", v) for v in values)
        said = features.none_absent("income", values)
        assert said == exact if values in plain else not said or exact, values
    assert features.none_absent("income", [1, 2]) and not features.none_absent("income", [1, 0])
