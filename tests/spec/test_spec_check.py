"""`credit-risk spec check SPEC DATA`: what in a file does not fit its spec; exit 0 when it
fits, 1 when it does not, 2 on a usage error."""

import pytest

from credit_risk.cli import main
from credit_risk.spec.check import check_file
from credit_risk.spec.dataset import load_spec
from tests.spec import traits

SPEC = """\
name: loans
tables:
  applications: {source: loans.csv, key: loan_id}
base: applications
target: {column: default, positive: 1}
columns:
  loan_id: {role: id}
  income: {role: numeric, min: 0}
  utilisation: {role: numeric, min: 0, max: 100}
  UrbanRural: {role: categorical, categories: [0, 1, 2]}
  NewExist: {role: categorical, categories: ["1", "2"]}
  guarantor: {role: categorical, categories: [yes, no]}
  recoveries: {role: ignored}
  months_in_arrears_at_close: {role: ignored}
  country: {role: ignored}
  notes_score: {role: ignored}
  default: {role: target}
"""


@pytest.fixture
def files(tmp_path):
    spec = tmp_path / "loans.yaml"
    spec.write_text(SPEC)
    return load_spec(spec), spec, tmp_path


def _problems(files, edit):
    spec, _, tmp_path = files
    df = traits.applications(300)
    edit(df)
    return check_file(spec, traits.write(tmp_path / "loans.csv", df))


def test_a_file_that_fits_has_no_problems(files):
    assert _problems(files, lambda df: None) == []


def test_coded_categories_fit_in_any_spelling(files):
    def edit(df):
        df["UrbanRural"] = df["UrbanRural"].astype(float)  # 0.0, 1.0, 2.0
        df.loc[0, "NewExist"] = None  # a blank: the column reads as floats
    assert _problems(files, edit) == [
        "NewExist: missing in 0.3% of rows, the spec allows 0.0% (max_null_rate)"]


def _set(column, row, value):
    def edit(df):
        df[column] = df[column].astype(object)
        df.loc[row, column] = value
    return edit


@pytest.mark.parametrize("edit,expected", [
    (lambda df: df.drop(columns=["income"], inplace=True),
     "income: in the spec (numeric), not in the file"),
    (lambda df: df.insert(1, "branch", "north"),
     "columns not in the spec (add them, e.g. as role: ignored): branch"),
    (_set("UrbanRural", 4, 7), "UrbanRural: 1 row outside the categories: '7' (1)"),
    (_set("guarantor", 2, "maybe"), "guarantor: 1 row outside the categories: 'maybe' (1)"),
    (_set("income", 5, "n/k"), "income: 1 row not numbers: 'n/k' (1)"),
    (_set("utilisation", 1, 140), "utilisation: 1 row beyond max 100: '140.0' (1)"),
    (_set("income", 1, -5), "income: 1 row beyond min 0: '-5.0' (1)"),
    (_set("utilisation", 7, None),
     "utilisation: missing in 0.3% of rows, the spec allows 0.0% (max_null_rate)"),
    (_set("default", 3, 2), "default (target): 3 distinct values ('0', '1', '2'); a target "
                            "has two"),
    (lambda df: df.__setitem__("default", 0),
     "default (target): no row has the default value 1 (values: '0')"),
    (_set("loan_id", 9, "L00000"), "loan_id: the table's key has 1 row repeating another: "
                                   "'L00000' (1)"),
])
def test_each_misfit_is_named(files, edit, expected):
    problems = _problems(files, edit)
    assert expected in problems, problems


def test_exit_codes(files, capsys):
    _, spec, tmp_path = files
    data = traits.write(tmp_path / "loans.csv", traits.applications(300))
    assert main(["spec", "check", str(spec), str(data)]) == 0
    assert "fits" in capsys.readouterr().err
    df = traits.applications(300)
    df.loc[0, "guarantor"] = "maybe"
    bad = traits.write(tmp_path / "bad.csv", df)
    assert main(["spec", "check", str(spec), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "guarantor: 1 row outside the categories" in out and "1 problems" in err
    assert main(["spec", "check", str(tmp_path / "none.yaml"), str(data)]) == 2
    assert "no dataset spec" in capsys.readouterr().err
    assert main(["spec", "check", str(spec), str(tmp_path / "none.csv")]) == 2
    assert "no data file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["spec", "check", str(spec)])
    assert exc.value.code == 2
