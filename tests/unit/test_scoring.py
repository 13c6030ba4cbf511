import math

import numpy as np
import pytest

from credit_risk.scoring.bands import rating
from credit_risk.scoring.scorer import ScoreScaling, ratings


def test_base_odds_give_base_score_and_pdo_doubles_odds():
    s = ScoreScaling(base_score=600, base_odds=30, pdo=40)
    pd_at = lambda odds: 1 / (1 + odds)  # noqa: E731  odds are good:bad
    assert s.score(np.array([pd_at(30)]))[0] == 600
    assert s.score(np.array([pd_at(60)]))[0] == 640
    assert s.factor == pytest.approx(40 / math.log(2))


def test_scores_are_clipped_and_monotone():
    s = ScoreScaling()
    scores = s.score(np.array([0.0, 1e-6, 0.01, 0.1, 0.5, 0.99, 1.0]))
    assert scores[0] == 900 and scores[-1] == 300
    assert all(a >= b for a, b in zip(scores, scores[1:], strict=False))


@pytest.mark.parametrize("score,band", [(300, "Poor"), (499, "Poor"), (500, "Average"),
                                        (649, "Average"), (650, "Good"), (749, "Good"),
                                        (750, "Excellent"), (900, "Excellent")])
def test_bands(score, band):
    assert rating(score) == band


def test_a_batch_of_scores_gets_each_scores_band():
    scores = np.arange(-100, 1200)
    assert ratings(scores) == [rating(s) for s in scores.tolist()]
    assert ratings(ScoreScaling().score(np.linspace(0, 1, 501))) == \
        [rating(s) for s in ScoreScaling().score(np.linspace(0, 1, 501)).tolist()]


def test_bands_are_contiguous_and_named_as_the_api_says():
    from typing import get_args

    from credit_risk.scoring import bands

    assert bands.NAMES == get_args(bands.Rating)
    assert bands.BANDS[0].low == -math.inf and bands.BANDS[-1].high == math.inf
    assert all(a.high == b.low for a, b in zip(bands.BANDS, bands.BANDS[1:], strict=False))
    assert bands.describe() == "Poor < 500 <= Average < 650 <= Good < 750 <= Excellent"
    assert [b["low"] for b in bands.on_scale(300, 900)] == [300, 500, 650, 750]
