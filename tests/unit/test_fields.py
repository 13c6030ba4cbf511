"""One definition of what a field accepts: the validator, the batch fast path, the pydantic /
OpenAPI schema and the GX suites all follow `credit_risk.spec.fields.Constraints`."""

import pytest
from pydantic import TypeAdapter, ValidationError

from credit_risk.scoring.request import application_model, validate_many
from credit_risk.spec.dataset import Column, DatasetSpec, Role
from credit_risk.spec.fields import Constraints, validate_application
from credit_risk.validation.suites import build_suites

VALUES = [None, 0, 1, 2, 5, 10, 11, -1, 2.0, 2.5, 1e300, float("inf"), float("nan"), 10**400,
          True, "3", "a", "b", "z", [], {}]
CONSTRAINTS = [
    Constraints("integer", min=0, max=10),
    Constraints("number", nullable=True, min=1),
    Constraints("number", max=2.5),
    Constraints("number"),
    Constraints("category", categories=("a", "b")),
    Constraints("category", nullable=True, categories=("a",)),
]


@pytest.mark.parametrize("c", CONSTRAINTS, ids=lambda c: f"{c.type}-{c.min}-{c.max}")
def test_validator_fast_path_and_pydantic_agree_on_every_value(c):
    adapter = TypeAdapter(c.annotation())
    for value in VALUES:
        ok = c.error(value) is None
        assert c.all_valid([value]) == ok, value
        assert c.all_valid([value, value]) == ok, value
        try:
            adapter.validate_python(value)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == ok, (value, c.error(value))
    assert c.all_valid([v for v in VALUES if c.error(v) is None])


@pytest.mark.parametrize("c", CONSTRAINTS)
def test_constraints_round_trip_through_an_input_field(c):
    assert Constraints.of_field({"name": "x", **c.as_field()}) == c


def _spec(**column) -> DatasetSpec:
    return DatasetSpec.model_validate({
        "name": "one", "tables": {"t": {"source": "t.csv", "key": "id"}}, "base": "t",
        "target": {"column": "y", "positive": 1},
        "columns": {"id": {"role": "id"}, "y": {"role": "target"}, "x": column}})


def test_a_spec_column_drives_the_field_the_api_schema_and_the_suite():
    spec = _spec(role="numeric", min=18, max=70, integer=True, max_null_rate=0.1)
    c = Constraints.of_column(spec.columns["x"])
    assert c == Constraints("integer", nullable=True, min=18, max=70)

    field = {"name": "x", "label": "X", **c.as_field()}
    schema = application_model([field]).model_json_schema()["properties"]["x"]
    assert {"type": "integer", "minimum": 18, "maximum": 70} in schema["anyOf"]
    assert {"type": "null"} in schema["anyOf"]
    assert validate_application([field], {"x": 17})[1] == {"x": "must be at least 18"}
    assert validate_many([field], [{"x": 18}, {"x": None}]) == ([{"x": 18}, {"x": None}], {})

    checks = {ch.name: ch for ch in build_suites(spec).checks["t"] if ch.column == "x"}
    assert checks["range"].kwargs == {"column": "x", "min_value": 18, "max_value": 70}
    assert "integer" in checks and "type" in checks and "categories" not in checks


def test_categories_in_the_suite_also_allow_raw_spellings_cleaning_maps():
    spec = _spec(role="categorical", categories=["Home", "Auto"],
                 replace={"Hom": "Home"}, missing_values=["?"])
    constraints = Constraints.of_column(spec.columns["x"])
    assert constraints == Constraints("category", categories=("Home", "Auto"),
                                      replace=(("Hom", "Home"),), missing=("?",))
    # validation cleans as training does: the raw spelling is the category, "?" is missing
    assert constraints.clean(" Hom ") == ("Home", None)
    assert constraints.clean("?") == (None, None)
    assert constraints.clean("Hmm") == (None, "must be one of: Home, Auto")
    (check,) = [ch for ch in build_suites(spec).checks["t"] if ch.name == "categories"]
    assert check.kwargs["value_set"] == ["Home", "Auto", "Hom", "?"]


def test_fitted_categories_win_over_the_spec_and_ids_have_no_constraints():
    col = Column(role=Role.CATEGORICAL, categories=["a", "b"])
    assert Constraints.of_column(col, ["b"]).categories == ("b",)
    assert Constraints.of_column(Column(role=Role.ID)) is None
    assert Constraints.of_column(Column(role=Role.IGNORED)) is None
    assert Constraints.of_column(Column(role=Role.IGNORED, max=3)).type == "number"


def test_a_category_matches_in_normal_form_nfc_and_is_scored_as_the_model_spells_it():
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    for categories in ((composed, "Bar"), (decomposed, "Bar")):
        c = Constraints("category", categories=categories)
        for sent in (composed, decomposed):
            assert c.clean(sent) == (categories[0], None)
        field = {"name": "x", **c.as_field()}
        assert validate_application([field], {"x": decomposed})[0] == {"x": categories[0]}
        assert validate_many([field], [{"x": "Bar"}, {"x": composed}])[0] == [
            {"x": "Bar"}, {"x": categories[0]}]


@pytest.mark.parametrize(("text", "why"), [
    ("\ud800", "must be valid UTF-8 text (U+D800: a lone surrogate"),
    ("a\udcff", "must be valid UTF-8 text (U+DCFF"),
    ("a\x00", "must not contain control characters"),
    ("\x9b", "must not contain control characters"),
    ("a\u202eb", "must not contain bidirectional control marks (U+202E)"),
    ("\u061c", "must not contain bidirectional control marks (U+061C)"),
    ("x" * 201, "must be at most 200 characters"),
])
def test_odd_text_is_refused_with_the_reason(text, why):
    from credit_risk.spec.fields import shown, text_error

    assert text_error(text).startswith(why)
    assert Constraints("category", categories=("a",)).error(text).startswith(why)
    assert shown(text).encode("utf-8").decode("ascii").isprintable()
    assert text_error("Caf\u00e9 \u05e9\u05dc\u05d5\u05dd \u4e2d") is None  # any script is text


@pytest.mark.parametrize("values", [
    [1.0, 2.0, 3.0], [1.0, None, 3.0], [1.5, 2.0, 3.0], [0.0, 2.0, 3.0], [1.0, 2.0, 99.0],
    [-1.0, 2.0, 3.0]])
@pytest.mark.parametrize("nullable", [True, False])
def test_a_float_array_validates_as_the_list_of_its_values(values, nullable):
    """`credit-risk predict` hands numeric columns over as float arrays (NaN: missing): the
    same clean values and the same errors as the values one by one."""
    import numpy as np

    from credit_risk.scoring.columns import as_values, validate_columns

    fields = [{"name": "n", "type": "integer", "min": 1, "max": 10, "nullable": nullable,
               "missing": ["-1"]}]
    array = np.array([np.nan if v is None else v for v in values])
    clean_list, errors_list = validate_columns(fields, {"n": values}, [], len(values))
    clean_array, errors_array = validate_columns(fields, {"n": array}, [], len(values))
    assert errors_array == errors_list
    assert as_values(clean_array["n"]) == as_values(clean_list["n"])


_TWO = [{"name": "x", **Constraints("integer", min=0, max=10).as_field()},
        {"name": "y", **Constraints("category", nullable=True, categories=("a", "b")).as_field()}]
_GOOD = {"x": 1, "y": "a"}


@pytest.mark.parametrize("odd", [
    None, {"x": 1}, {"x": 1, "z": "a"}, {"x": 1, "y": "a", "z": 2}, {"y": "a", "z": 1},
    {"x": 1, "y": "a", "application_id": "L1"}, {"x": 1, "y": "a", "application_id": ""},
    {"x": 1, "y": "a", "application_id": 7}, {"x": 1, "y": "a", "application_id": None},
    {"x": 1, "y": "a", "application_id": "L\u0301"}, {"x": 1, "application_id": "L1"},
    {"x": 1, "z": 2, "application_id": "L1"}, {"x": 1, "y": "a", "z": 2, "application_id": "L1"},
    {"x": 11, "y": "a"}, {"x": 1, "y": "c", "application_id": "L1"}, [1, "a"], "x", {},
], ids=repr)
@pytest.mark.parametrize("where", [0, 2])
def test_a_batch_is_validated_as_each_application_alone(odd, where):
    """The batch fast path accepts exactly what `validate_one` accepts, application by
    application (an odd one first or last among good ones, with and without ids)."""
    from credit_risk.scoring.request import validate_one

    items = [dict(_GOOD), {**_GOOD, "application_id": "L0"}]
    items.insert(where, odd)
    alone = [validate_one(_TWO, item) for item in items]
    expected = ([clean for clean, _ in alone],
                {str(i): why for i, (_, why) in enumerate(alone) if why})
    assert validate_many(_TWO, items) == expected
    assert validate_many(_TWO, [items[1]] * 3) == ([validate_one(_TWO, items[1])[0]] * 3,
                                                   {"0": alone[1][1], "1": alone[1][1],
                                                    "2": alone[1][1]} if alone[1][1] else {})
