import numpy as np
import pytest

from credit_risk.pipeline.evaluate import (
    classification_metrics,
    expected_calibration_error,
    ks_statistic,
)


def test_perfectly_calibrated_scores_have_small_ece():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = rng.random(p.size) < p
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.1


def test_ks_of_separated_and_random_scores():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert ks_statistic(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])) == 1.0
    assert ks_statistic(y, np.array([0.5] * 6)) == 0.0


def test_metrics_at_threshold():
    y = np.array([0, 0, 1, 1])
    m = classification_metrics(y, np.array([0.1, 0.6, 0.4, 0.9]), 0.5)
    assert m["roc_auc"] == 0.75 and m["gini"] == 0.5
    assert m["precision"] == 0.5 and m["recall"] == 0.5


def test_ece_and_the_reliability_table_share_one_binning():
    from credit_risk.pipeline.evaluate import pd_bins
    from credit_risk.pipeline.reports import reliability_table

    rng = np.random.default_rng(2)
    p = np.concatenate([rng.uniform(0, 0.35, 900), [0.0, 0.1, 0.999, 1.0]])
    y = (rng.random(p.size) < p).astype(int)
    bins = pd_bins(y, p)
    assert [b["low"] for b in bins] == [0.0, 0.1, 0.2, 0.3, 0.9]  # non-empty bins only
    assert sum(b["n"] for b in bins) == p.size  # 1.0 falls in the last bin
    table = reliability_table(y, p)
    assert [r.bin for r in table] == ["0.0-0.1", "0.1-0.2", "0.2-0.3", "0.3-0.4", "0.9-1.0"]
    assert expected_calibration_error(y, p) == pytest.approx(
        sum(r.n * abs(r.default_rate - r.mean_pd) for r in table) / p.size)
