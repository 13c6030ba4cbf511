import pytest

from credit_risk.spec.dataset import SpecError, load_spec


def test_builtin_specs_load():
    assert load_spec("lauki_synthetic").target.column == "default"
    german = load_spec("german_credit")
    assert set(german.protected_columns()) == {"personal_status_and_sex", "age_in_years",
                                               "foreign_worker"}
    assert "age_in_years" not in german.numeric_features()


def test_unknown_spec_lists_the_builtin_ones():
    with pytest.raises(SpecError, match="german_credit"):
        load_spec("nope")


@pytest.mark.parametrize("body,message", [
    ("name: x\n", "tables"),
    ("name: [x", "not valid YAML"),
    ("- a\n- b\n", "mapping"),
    ("name: x\ntables: {t: {source: t.csv}}\nbase: u\ntarget: {column: y, positive: 1}\n"
     "columns: {y: {role: target}}\n", "base table"),
    ("name: x\ntables: {t: {source: t.csv}}\nbase: t\ntarget: {column: y, positive: 1}\n"
     "columns: {y: {role: target}, a: {role: categorical}}\n"
     "derived: {r: {expr: a / 2}}\n", "not a numeric column"),
    ("name: x\ntables: {t: {source: t.csv}}\nbase: t\ntarget: {column: y, positive: 1}\n"
     "columns: {y: {role: target}, a: {role: numeric, colour: red}}\n", "colour"),
])
def test_bad_specs_get_specific_errors(tmp_path, body, message):
    path = tmp_path / "spec.yaml"
    path.write_text(body)
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_rules_must_name_application_fields(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ntables: {t: {source: t.csv}}\nbase: t\n"
                    "target: {column: y, positive: 1}\n"
                    "columns: {y: {role: target}, a: {role: numeric}}\n"
                    "rules: [{check: a <= b}]\n")
    with pytest.raises(SpecError, match="uses 'b', not an application field"):
        load_spec(path)
