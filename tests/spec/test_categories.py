"""What the user meant: specs read as YAML 1.2 (yes/no stay text, a boolean category is an
error that says so), and numeric codes are one category in every spelling (1, 1.0, "1"), in
the spec, in files (training and the plan serving runs), in the API and in a batch."""

import numpy as np
import pandas as pd
import pytest

from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.scoring.features import FeaturePlan
from credit_risk.scoring.request import validate_many, validate_one
from credit_risk.spec.codes import category_text
from credit_risk.spec.dataset import SpecError, load_spec
from credit_risk.spec.fields import Constraints

HEAD = ("name: x\ntables: {t: {source: t.csv}}\nbase: t\ntarget: {column: y, positive: yes}\n"
        "columns:\n  y: {role: target}\n")


def _spec(tmp_path, columns):
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + columns)
    return load_spec(path)


def test_yes_no_on_off_stay_text(tmp_path):
    spec = _spec(tmp_path, "  a: {role: categorical, categories: [yes, no, on, off, Y, N]}\n"
                           "  b: {role: categorical, replace: {yes: Y, no: N}}\n")
    assert spec.columns["a"].categories == ["yes", "no", "on", "off", "Y", "N"]
    assert spec.columns["b"].replace == {"yes": "Y", "no": "N"}
    assert spec.target.positive == "yes"


@pytest.mark.parametrize("value", ["true", "false", "True"])
def test_a_boolean_category_is_an_error_that_says_so(tmp_path, value):
    with pytest.raises(SpecError, match=rf"columns\.a\.categories\.1: .*{value.lower()} is a "
                                        r"boolean, not a category: quote it"):
        _spec(tmp_path, f"  a: {{role: categorical, categories: [x, {value}]}}\n")


def test_numeric_codes_in_a_spec_are_text(tmp_path):
    spec = _spec(tmp_path, '  a: {role: categorical, categories: [0, 1.0, "2", "2.50", "01"]}\n'
                           "  b: {role: categorical, replace: {9: 0}}\n")
    assert spec.columns["a"].categories == ["0", "1", "2", "2.50", "01"]
    assert spec.columns["b"].replace == {"9": "0"}


def test_a_key_given_twice_is_refused(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        _spec(tmp_path, "  a: {role: numeric}\n  a: {role: categorical}\n")


@pytest.mark.parametrize("raw,text", [(1, "1"), (1.0, "1"), ("1", "1"), ("1.0", "1"),
                                      (" 2.00 ", "2"), (np.int64(3), "3"), (1.5, "1.5"),
                                      ("01", "01"), ("yes", "yes"), (True, "True")])
def test_category_text(raw, text):
    assert category_text(raw) == text


FIELDS = [{"name": "urban_rural", "label": "Urban/rural", "type": "category",
           "categories": ["0", "1", "2"], "nullable": False},
          {"name": "income", "label": "Income", "type": "number", "min": 0, "max": None,
           "nullable": False}]


@pytest.mark.parametrize("code", [1, 1.0, "1", "1.0", " 1 "])
def test_the_api_takes_a_code_in_any_spelling(code):
    clean, errors = validate_one(FIELDS, {"urban_rural": code, "income": 10})
    assert errors == {} and clean["urban_rural"] == "1"


@pytest.mark.parametrize("value,why", [(True, "must be a category, not a boolean (true)"),
                                       (7, "must be one of: 0, 1, 2"),
                                       (1.5, "must be one of: 0, 1, 2"),
                                       ([1], "must be a string")])
def test_what_is_not_a_code_is_refused(value, why):
    assert validate_one(FIELDS, {"urban_rural": value, "income": 1})[1] == {"urban_rural": why}


def test_a_batch_takes_codes_in_any_spelling():
    clean, bad = validate_many(FIELDS, [{"urban_rural": v, "income": 1}
                                        for v in (0, 1.0, "2", "2.0")])
    assert bad == {} and [c["urban_rural"] for c in clean] == ["0", "1", "2", "2"]
    _, bad = validate_many(FIELDS, [{"urban_rural": 0, "income": 1},
                                    {"urban_rural": False, "income": 1}])
    assert bad == {"1": {"urban_rural": "must be a category, not a boolean (false)"}}


def test_a_model_fitted_on_float_codes_takes_any_spelling():
    assert Constraints("category", categories=("1.0", "2.0")).clean(1) == ("1.0", None)


def test_training_and_serving_read_codes_alike(tmp_path):
    """A coded column read as ints, as floats beside blanks, or as text is one feature set."""
    spec = _spec(tmp_path, "  code: {role: categorical}\n  x: {role: numeric}\n")
    y = pd.Series(["yes", "no"] * 3)
    as_ints = pd.DataFrame({"code": [0, 1, 2, 0, 1, 2], "x": [1.0, 2, 3, 4, 5, 6]})
    fitted = FeatureTransformer(spec).fit(as_ints, y)
    assert fitted.categories_["code"] == ["0", "1", "2"]
    expected = fitted.transform(as_ints)
    as_floats = as_ints.assign(code=[0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    as_text = as_ints.assign(code=["0", "1.0", " 2", "0", "1", "2.0"])
    np.testing.assert_array_equal(fitted.transform(as_floats), expected)
    np.testing.assert_array_equal(fitted.transform(as_text), expected)
    # the plan serving runs on records gives the same rows
    plan = FeaturePlan(fitted.plan_)
    records = [{"code": c, "x": x} for c, x in zip([0, 1.0, "2", "0.0", 1, 2],
                                                   as_ints["x"], strict=True)]
    np.testing.assert_array_equal(plan.prepare(records)[0], expected)
    # fitted on floats (a coded column with blanks), the categories are the codes still
    with_blank = as_floats.assign(code=[0.0, 1.0, 2.0, None, 1.0, 2.0])
    assert FeatureTransformer(spec).fit(with_blank, y).categories_["code"] == ["0", "1", "2"]


def test_drift_reads_codes_as_the_model_spells_them():
    """The reference (a training file's codes 0/1/2) vs the log (the model's "0"/"1"/"2")."""
    from credit_risk.pipeline.monitoring import psi_categorical

    reference = pd.Series([0, 1, 2, 1] * 50)
    assert psi_categorical(reference, pd.Series(["0", "1", "2", "1"] * 20)) == pytest.approx(0)
    assert psi_categorical(reference.astype(float), reference) == pytest.approx(0)
