"""Decision policies: each picks the threshold it states on constructed PDs; bad settings and
unreachable targets are clear errors; the operating point's figures."""

import numpy as np
import pytest
from pydantic import ValidationError

from credit_risk.config import Settings
from credit_risk.pipeline.decision_policy import (
    PolicyError,
    check_policy,
    dataset_policy,
    describe_policy,
    operating_curve,
    operating_point,
    policy_threshold,
)
from credit_risk.spec.dataset import DatasetSpec, load_spec

P = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10])
Y = np.array([0, 0, 0, 1, 0, 0, 1, 1, 1, 1])


def threshold(y, p, exposure=None, **settings):
    return policy_threshold(y, p, Settings(**settings).policy, exposure)


def test_cost_policy_minimises_the_stated_costs():
    # 1:1: approving the 6 lowest costs 1 (a default approved), the 3 lowest 2 (two goods
    # declined)
    assert threshold(Y, P, threshold_policy="cost", cost_missed_default=1,
                     cost_rejected_good=1) == 0.07
    # a missed default 20x a declined good: decline from the first default on
    assert threshold(Y, P, threshold_policy="cost", cost_missed_default=20) == 0.04


def test_cost_policy_beats_every_other_threshold_and_sits_near_bayes():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 5000)
    y = (rng.random(p.size) < p).astype(int)
    t = threshold(y, p, threshold_policy="cost", cost_missed_default=5)

    def cost(th):
        pred = p >= th
        return 5 * np.sum((~pred) & (y == 1)) + np.sum(pred & (y == 0))

    assert all(cost(t) <= cost(th) for th in np.linspace(0, 1, 101))
    # With calibrated PDs the optimum is near the Bayes threshold 1 / (1 + 5).
    assert t == pytest.approx(1 / 6, abs=0.05)


def test_approval_rate_policy_approves_the_target_share():
    t = threshold(Y, P, threshold_policy="approval_rate", target_approval_rate=0.7)
    assert t == 0.08 and (P < t).mean() == 0.7
    tied = np.array([0.1, 0.1, 0.1, 0.2])  # cuts only between distinct PDs: 0, 3 or 4 rows
    t = threshold(np.array([0, 0, 1, 1]), tied, threshold_policy="approval_rate",
                  target_approval_rate=0.6)
    assert (tied < t).mean() == 0.75


def test_bad_rate_policy_approves_the_most_within_the_limit():
    # bad rate among the k lowest: 0, 0, 0, .25, .2, .167, .286, ...: at most 0.2 up to k=6
    t = threshold(Y, P, threshold_policy="bad_rate", max_bad_rate=0.2)
    assert t == 0.07 and Y[P < t].mean() <= 0.2
    with pytest.raises(PolicyError, match="max_bad_rate 0.0100: the lowest it reaches at any "
                                          "threshold is 0.5000"):
        threshold(np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]), threshold_policy="bad_rate",
                  max_bad_rate=0.01)


def test_expected_loss_policy_weighs_loans_by_exposure():
    p, y = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1])
    exposure = np.array([1.0, 1.0, 100.0, 1.0])  # a large good loan behind a small default
    # LGD 0.5 x approved default exposure + margin 0.1 x declined good exposure: approving
    # three costs 0.5, stopping before the first default 10
    t = threshold(y, p, exposure, threshold_policy="expected_loss", lgd=0.5, margin=0.1)
    assert t == 0.4
    # the same 5:1 ratio per loan, without exposures: stop before the first default
    assert threshold(y, p, threshold_policy="cost", cost_missed_default=5) == 0.2
    with pytest.raises(PolicyError, match="exposure"):
        threshold(y, p, threshold_policy="expected_loss")


def test_recall_policy_is_kept():
    t = threshold(Y, P, threshold_policy="recall", target_recall=0.6)
    assert t == 0.08 and Y[P >= t].sum() / Y.sum() >= 0.6


@pytest.mark.parametrize("setting,value,says", [
    ("threshold_policy", "profit", "CREDIT_RISK_THRESHOLD_POLICY"),
    ("max_bad_rate", 0.0, "CREDIT_RISK_MAX_BAD_RATE"),
    ("target_approval_rate", 1.0, "CREDIT_RISK_TARGET_APPROVAL_RATE"),
    ("lgd", 1.5, "CREDIT_RISK_LGD"),
    ("lda_search", "sometimes", "CREDIT_RISK_LDA_SEARCH"),
])
def test_bad_policy_settings_name_the_setting(setting, value, says):
    with pytest.raises(ValidationError, match=says):
        Settings(**{setting: value})


def test_expected_loss_needs_an_exposure_field_in_the_spec():
    spec = load_spec("lauki_synthetic")
    check_policy(Settings(threshold_policy="expected_loss").policy, spec)  # loan_amount
    bare = spec.model_copy(update={"exposure": None})
    with pytest.raises(PolicyError, match="names none: add `exposure:"):
        check_policy(Settings(threshold_policy="expected_loss").policy, bare)
    check_policy(Settings().policy, bare)  # other policies need none


def test_operating_point_and_curve():
    exposure = np.full(len(P), 2.0)
    point = operating_point(Y, P, 0.07, lgd=0.5, exposure=exposure)
    assert point.approval_rate == 0.6 and point.bad_rate == pytest.approx(1 / 6)
    assert point.defaults_caught == pytest.approx(4 / 5)
    assert point.expected_loss == pytest.approx(0.5 * 2 * P[:6].sum())
    assert point.expected_loss_rate == pytest.approx(0.5 * P[:6].mean())
    assert point.realised_loss_rate == pytest.approx(0.5 / 6)
    curve = operating_curve(Y, P, 0.07, lgd=0.5)
    rates = [c.approval_rate for c in curve]
    assert rates == sorted(rates) and 0.6 in rates and len(curve) >= 3
    assert describe_policy(Settings(threshold_policy="bad_rate").policy) == {
        "policy": describe_policy(Settings(threshold_policy="bad_rate").policy)["policy"],
        "name": "bad_rate", "max_bad_rate": 0.02}


def test_a_spec_sets_its_own_policy_and_a_bad_one_is_refused():
    german = load_spec("german_credit")  # its own cost matrix, 5:1
    assert dataset_policy(Settings(), german).policy.cost_missed_default == 5
    assert dataset_policy(Settings(), load_spec("lauki_synthetic")).policy == Settings().policy
    for policy, says in [({"max_bad_rate": 2}, "policy: max_bad_rate: Input should be less"),
                         ({"nope": 1}, "policy: nope: Extra inputs are not permitted")]:
        with pytest.raises(ValidationError, match=says):
            DatasetSpec.model_validate({**german.model_dump(), "policy": policy})
    with pytest.raises(ValidationError, match="exposure 'purpose' is not a numeric column"):
        DatasetSpec.model_validate({**german.model_dump(), "exposure": "purpose"})
