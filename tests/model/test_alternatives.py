"""The least discriminatory alternative search on constructed data: a proxy of the protected
group drives the disparity (the search finds the model without it, the gate approves that
one), or the disparity comes with the only informative feature (no alternative: the gate
says why)."""

import numpy as np
import pandas as pd
import pytest

from credit_risk.config import Settings
from credit_risk.pipeline import steps as pipeline
from credit_risk.pipeline.alternatives import should_search, spec_without
from credit_risk.pipeline.model_card import model_card_markdown
from credit_risk.pipeline.run_reports import (
    Comparison,
    Fairness,
    SplitRecord,
    SplitRule,
    read_report,
)
from credit_risk.pipeline.run_reports import write_report as write
from credit_risk.spec.dataset import DatasetSpec, load_spec
from tests.conftest import small_settings

SPEC = DatasetSpec.model_validate({
    "name": "lda_toy", "tables": {"apps": {"source": "apps.csv"}}, "base": "apps",
    "target": {"column": "bad", "positive": 1},
    "columns": {"group": {"role": "categorical", "protected": True, "categories": ["A", "B"]},
                "x": {"role": "numeric"}, "proxy": {"role": "numeric"},
                "noise": {"role": "numeric"}, "bad": {"role": "target"}},
})


def applications(n: int, seed: int, proxy_drives: bool) -> pd.DataFrame:
    """Group B defaults more. proxy_drives: through `proxy` (group + noise), x is the same in
    both groups; else through x itself, the one informative feature."""
    rng = np.random.default_rng(seed)
    b = rng.random(n) < 0.5
    x = rng.normal(0, 1, n) + (0 if proxy_drives else 1.2 * b)
    proxy = b + rng.normal(0, 0.3, n) if proxy_drives else rng.normal(0, 1, n)
    logit = -1.5 + 1.5 * x + (1.0 * proxy if proxy_drives else 0)
    bad = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"group": np.where(b, "B", "A"), "x": x, "proxy": proxy,
                         "noise": rng.normal(0, 1, n), "bad": bad})


def comparison_of(tmp_path, proxy_drives: bool, **settings) -> Comparison:
    """A run folder's split of constructed data, one logistic regression trained and
    compared by the pipeline's own steps (sigmoid calibration: no ties between PDs, so the
    approval rate policy can cut where it is told)."""
    s = small_settings(tmp_path, models=("logistic_regression",), calibration="sigmoid",
                       threshold_policy="approval_rate", target_approval_rate=0.7, **settings)
    split = tmp_path / "runs" / "run" / "split"
    split.mkdir(parents=True)
    parts = {"train": applications(2000, 1, proxy_drives),
             "test": applications(1000, 2, proxy_drives)}
    for part, df in parts.items():
        df.rename(columns={"bad": pipeline.TARGET}).to_parquet(split / f"{part}.parquet")
    write(SplitRecord(dataset="lda_toy", spec=SPEC.model_dump(mode="json"),
                      data_fingerprint="toy", train_rows=2000, test_rows=1000,
                      train_default_rate=float(parts["train"].bad.mean()),
                      test_default_rate=float(parts["test"].bad.mean()),
                      split_rule=SplitRule(key=None, seed=42, test_size=0.33),
                      test_fingerprint="toy"), split / "split.json")
    path = pipeline.train_step(s, str(split), "logistic_regression")
    return read_report(Comparison, pipeline.evaluate_step(s, str(split), [path]))


def test_the_model_without_the_proxy_is_found_and_approved(tmp_path):
    comparison = comparison_of(tmp_path, proxy_drives=True, lda_max_auc_loss=0.1)
    search = comparison.alternatives
    assert search is not None and search.trigger == "fairness gate failed"
    assert search.drivers[0].feature == "proxy" and search.drivers[0].gain > 0
    tried = {a.model: a for a in search.tried}
    assert set(tried) >= {"logistic_regression", "logistic_regression_without_proxy"}
    assert tried["logistic_regression"].cv_ratio < 0.8  # what failed
    alternative = tried["logistic_regression_without_proxy"]
    assert alternative.within_auc and alternative.cv_ratio >= 0.8
    assert alternative.cv_roc_auc < tried["logistic_regression"].cv_roc_auc  # the price paid
    assert search.chosen == comparison.selected == "logistic_regression_without_proxy"
    assert comparison.approved and comparison.fairness.passed, comparison.rejection_reasons
    assert comparison.selected_candidate.params["without"] == ["proxy"]
    # the operating point at the alternative's own threshold: 70% approved on out of fold
    assert comparison.policy is not None and comparison.policy.policy == "approval_rate"
    assert comparison.policy.validation.approval_rate == pytest.approx(0.7, abs=0.01)
    manifest = {"spec": SPEC.model_dump(mode="json"), "dataset": "lda_toy",
                "model": comparison.selected, "version": "v", "code_version": "c",
                "data_fingerprint": "toy", "features": ["x", "noise"], "params": {},
                "threshold": 0.1, "threshold_policy": {"policy": "p"},
                "score_scaling": {}, "libraries": {}}
    card = model_card_markdown(manifest, comparison)
    assert "## Less discriminatory alternatives" in card
    assert "| logistic_regression_without_proxy | proxy |" in card
    assert "![operating curve](operating_curve.png)" in card
    assert (tmp_path / "runs" / "run" / "operating_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_no_alternative_when_the_disparity_comes_with_the_accuracy(tmp_path):
    comparison = comparison_of(tmp_path, proxy_drives=False)  # default: 0.005 of ROC-AUC
    search = comparison.alternatives
    assert search is not None and search.chosen is None
    assert search.drivers[0].feature == "x"
    without_x = next(a for a in search.tried if a.without == ["x"])
    assert not without_x.within_auc  # x carries the accuracy
    assert search.outcome.startswith("none")
    assert not comparison.approved and comparison.selected == "logistic_regression"
    assert any(r.startswith("least discriminatory alternative: none") for r in
               comparison.rejection_reasons)


@pytest.mark.parametrize("mode,passed,why", [
    ("on_failure", False, "fairness gate failed"), ("on_failure", True, None),
    ("always", True, "always"), ("always", False, "fairness gate failed"),
    ("off", False, None)])
def test_when_the_search_runs(mode, passed, why):
    fairness = Fairness(min_ratio=0.8, min_group_size=30, attributes={}, passed=passed)
    assert should_search(Settings(lda_search=mode), fairness) == why


def test_spec_without_drops_the_feature_and_the_rules_on_fields_no_longer_asked():
    spec = load_spec("lauki_synthetic")
    fewer = spec_without(spec, ["delinquency_ratio", "avg_dpd_per_delinquency"])
    assert "delinquency_ratio" not in fewer.derived
    assert "delinquent_months" not in fewer.input_columns() and not fewer.rules
    assert not spec_without(spec, ["income"]).columns["income"].is_feature
    assert spec_without(spec, []) is spec
    with pytest.raises(ValueError, match="'nope' is not a feature"):
        spec_without(spec, ["nope"])


def test_always_reports_alternatives_and_keeps_a_passing_candidate(tmp_path):
    comparison = comparison_of(tmp_path, proxy_drives=False, lda_search="always",
                               min_approval_ratio=0.0)
    search = comparison.alternatives
    assert search is not None and search.trigger == "always" and search.chosen is None
    assert len(search.tried) >= 2  # the candidate and at least one variant
    assert comparison.approved and comparison.selected == "logistic_regression"
