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


SCORECARD_SPEC = ("name: x\ntables: {t: {source: t.csv}}\nbase: t\n"
                  "target: {column: y, positive: 1}\ncolumns:\n  y: {role: target}\n")


@pytest.mark.parametrize("entry,message", [
    ("a: {role: numeric, monotone: increasing, binning: {trend: decreasing}}",
     "binning trend 'decreasing' contradicts monotone 'increasing'"),
    ("a: {role: categorical, binning: {trend: increasing}}",
     "a categorical field takes no binning trend"),
    ("a: {role: numeric, binning: {max_bins: 1}}", "max_bins.*greater than or equal to 2"),
    ("a: {role: numeric, binning: {min_bin_share: 0.7}}", "min_bin_share.*less than or equal"),
    ("a: {role: numeric, binning: {trend: upwards}}", "trend.*'increasing'"),
    ("a: {role: numeric, binning: {bins: 3}}", "bins.*Extra inputs"),
    ("a: {role: numeric, feature: false, binning: {max_bins: 3}}",
     "binning is for model features"),
    ("a: {role: id, binning: {max_bins: 3}}", "binning is for model features"),
])
def test_bad_scorecard_binning_gets_a_clear_error(tmp_path, entry, message):
    path = tmp_path / "spec.yaml"
    path.write_text(SCORECARD_SPEC + f"  {entry}\n")
    with pytest.raises(SpecError, match=message):
        load_spec(path)


def test_a_derived_feature_binning_must_agree_with_its_trend(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SCORECARD_SPEC + "  a: {role: numeric}\n  b: {role: numeric}\n"
                    "derived: {r: {expr: a / b, monotone: decreasing, "
                    "binning: {trend: peak}}}\n")
    with pytest.raises(SpecError, match=r"derived.r.*binning trend 'peak' contradicts"):
        load_spec(path)
    path.write_text(SCORECARD_SPEC + "  a: {role: numeric}\n  b: {role: numeric}\n"
                    "derived: {r: {expr: a / b, monotone: decreasing, "
                    "binning: {trend: decreasing, max_bins: 4, min_bin_share: 0.1}}}\n")
    assert load_spec(path).derived["r"].binning.max_bins == 4
