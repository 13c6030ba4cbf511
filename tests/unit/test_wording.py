"""A batch's reason words: a phrase bound once per feature, each distinct value worded once."""

import math

import numpy as np
import pytest

from credit_risk.scoring.wording import RAISES, _memo, _phrase, quantity

UNITS = ["", "%", "% of disposable income", "years", "INR", "enquiries", "class"]
VALUES = [0, 1, -1, 2, 1234567, -98765, 2**60, 10**300, -(10**300), 2**1023, 0.0, -0.0, 1.0,
          -1.0, 1.5, 0.999, 1.005, 12.345, 1234567.891, -2.5e9, 1e20, 5e-324, math.inf,
          -math.inf, math.nan, True, False, "7", " 0 ", None, [3], np.float64(1.0),
          np.int64(3), np.float32(2.5)]


@pytest.mark.parametrize("unit", UNITS)
def test_a_features_phrase_is_its_label_and_the_quantity(unit):
    phrase = _phrase("Age", unit)
    for value in VALUES:
        assert phrase(value) == f"Age ({quantity(value, unit)}) {RAISES}", value
    with pytest.raises(OverflowError):  # as quantity: no float for the int
        phrase(10**400)
    with pytest.raises(OverflowError):
        quantity(10**400, unit)


def _each(fn):
    return lambda values: [fn(v) for v in values]


def test_each_distinct_value_is_worded_once_the_first_of_equal_values():
    calls = []

    def word(v):
        calls.append(v)
        return repr(v)

    nan = math.nan
    values = [1, 1.0, 2, 0.0, -0.0, 0, nan, nan, float("nan"), "a", 2]
    assert _memo(_each(word), values) == ["1", "1", "2", "0.0", "0.0", "0.0", "nan", "nan",
                                          "nan", "'a'", "2"]
    assert len(calls) == 6  # 1, 2, 0.0, nan (the same object twice), the other nan, "a"


def test_true_and_1_are_worded_apart_and_unhashable_values_one_by_one():
    values = [1, True, 1.0, False, 0, True, 1]
    assert _memo(_each(repr), values) == ["1", "True", "1", "False", "0", "True", "1"]
    assert _memo(_each(repr), [[3], 3, [3], True]) == ["[3]", "3", "[3]", "True"]
    assert _memo(_each(repr), []) == []
