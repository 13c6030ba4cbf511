"""`credit-risk spec init`: a draft spec from a data file, on the bundled data and on files with
each trait (coded categories, yes/no values, leaks by name and by separation, a constant and a
mostly missing column)."""

from pathlib import Path

import pytest

from credit_risk.cli import main
from credit_risk.spec.check import check_file
from credit_risk.spec.dataset import SpecError, load_spec
from credit_risk.spec.draft import auc, draft_spec, draft_yaml
from tests.spec import traits

GERMAN = Path(__file__).parents[2] / "credit_risk" / "datasets" / "data" / "german_credit.csv"


def _draft(tmp_path, data, target, **kwargs):
    draft = draft_spec(data, target, **kwargs)
    path = tmp_path / "draft.yaml"
    path.write_text(draft_yaml(draft))
    return draft, load_spec(path)


def test_the_german_credit_draft_loads_and_fits_its_file(tmp_path):
    draft, spec = _draft(tmp_path, GERMAN, "creditability")
    assert spec.target.column == "creditability" and spec.target.positive == "bad"
    assert draft.warnings == []
    roles = {n: c.role.value for n, c in spec.columns.items()}
    assert roles["purpose"] == roles["foreign_worker"] == "categorical"
    assert roles["duration_in_month"] == roles["credit_amount"] == "numeric"
    assert spec.columns["duration_in_month"].integer
    # the protected attributes the built-in spec names are found by their names
    assert {"personal_status_and_sex", "age_in_years", "foreign_worker"} <= set(
        spec.protected_columns())
    # the categories with their counts are in the draft, as comments to uncomment
    text = (tmp_path / "draft.yaml").read_text()
    assert '#   - "radio/television"  # 280' in text and "observed 4 .. 72" in text
    assert check_file(spec, GERMAN) == []


def test_each_trait_of_a_file_is_found(tmp_path):
    data = traits.write(tmp_path / "loans.csv", traits.applications())
    draft, spec = _draft(tmp_path, data, "default")
    roles = {n: c.role.value for n, c in spec.columns.items()}
    assert roles == {
        "loan_id": "id", "income": "numeric", "utilisation": "numeric",
        "UrbanRural": "categorical",  # codes 0/1/2: few distinct whole numbers
        "NewExist": "categorical",  # codes 1/2
        "guarantor": "categorical",  # yes/no stay text
        "recoveries": "ignored",  # a leak by its name
        "months_in_arrears_at_close": "ignored",  # alone separates the target
        "country": "ignored",  # constant
        "notes_score": "ignored",  # mostly missing
        "default": "target",
    }
    assert spec.target.positive == 1 and spec.tables[spec.base].key == "loan_id"
    warnings = "\n".join(draft.warnings)
    assert "recoveries: looks known only after the outcome" in warnings
    assert "country: is constant ('DE')" in warnings
    assert "notes_score: is mostly missing (8" in warnings
    text = (tmp_path / "draft.yaml").read_text()
    assert '#   - "yes"' in text and '#   - "2"' in text  # categories with counts
    assert "WARNING: is constant" in text  # the warnings are in the draft too
    assert check_file(spec, data) == []


def test_a_column_that_alone_separates_the_target_is_a_leak(tmp_path):
    df = traits.applications(600)
    df["final_grade"] = df["default"] * 10 + df["utilisation"] / 1000  # no leaky name
    df["band"] = df["default"].map({0: "A", 1: "Z"})  # a category that gives it away
    data = traits.write(tmp_path / "loans.csv", df)
    draft, spec = _draft(tmp_path, data, "default")
    assert spec.columns["final_grade"].role.value == "ignored"
    assert spec.columns["band"].role.value == "ignored"
    assert any(w.startswith("final_grade: alone separates the target (ROC-AUC 1.000)")
               for w in draft.warnings)
    assert spec.columns["utilisation"].role.value == "numeric"  # predictive, not a leak


def test_single_feature_auc():
    import numpy as np

    y = np.array([False, False, True, True])
    assert auc(np.array([1.0, 2, 3, 4]), y) == 1.0
    assert auc(np.array([4.0, 3, 2, 1]), y) == 0.0
    assert auc(np.array([1.0, 1, 1, 1]), y) == 0.5


def test_missing_rates_are_allowed_with_a_margin(tmp_path):
    df = traits.applications(1000)
    df.loc[df.index[:30], "income"] = None
    data = traits.write(tmp_path / "loans.csv", df)
    _, spec = _draft(tmp_path, data, "default")
    assert spec.columns["income"].max_null_rate == pytest.approx(0.04)
    assert check_file(spec, data) == []


@pytest.mark.parametrize("target,message", [("nope", "no column 'nope'"),
                                            ("UrbanRural", "3 distinct values")])
def test_a_target_that_does_not_fit_is_refused(tmp_path, target, message):
    data = traits.write(tmp_path / "loans.csv", traits.applications(200))
    with pytest.raises(SpecError, match=message):
        draft_spec(data, target)


def test_the_command_writes_the_draft_and_prints_the_warnings(tmp_path, capsys):
    data = traits.write(tmp_path / "loans.csv", traits.applications(500))
    out = tmp_path / "spec.yaml"
    assert main(["spec", "init", str(data), "--target", "default", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: recoveries: looks known only after the outcome" in err
    assert f"credit-risk spec check {out}" in err
    assert load_spec(out).name == "loans"
    # an existing file is kept unless --force
    assert main(["spec", "init", str(data), "--target", "default", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["spec", "init", str(data), "--target", "default", "--out", str(out),
                 "--name", "small_loans", "--force"]) == 0
    assert load_spec(out).name == "small_loans"
    # no --out: the draft on standard output
    assert main(["spec", "init", str(GERMAN), "--target", "creditability"]) == 0
    assert "name: \"german_credit\"" in capsys.readouterr().out
    assert main(["spec", "init", str(tmp_path / "none.csv"), "--target", "y"]) == 2
    assert "no data file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # --target is required
        main(["spec", "init", str(data)])
    assert exc.value.code == 2
