"""Labels made from column names when the spec gives none, and units for a quantity of one."""

import pytest

from credit_risk.spec.dataset import load_spec
from credit_risk.spec.fields import input_fields
from credit_risk.tables import label_of, singular


@pytest.mark.parametrize(("name", "label"), [
    ("UrbanRural", "Urban rural"),
    ("loan_to_income", "Loan to income"),
    ("NewExist", "New exist"),
    ("ApprovalFY", "Approval FY"),
    ("SBA_Appv", "SBA appv"),
    ("DPD", "DPD"),
    ("HTTPServer", "HTTP server"),
    ("num_30dpd", "Num 30 dpd"),
    ("credit_utilization_ratio", "Credit utilization ratio"),
    ("Term", "Term"),
])
def test_names_split_at_case_changes_digits_and_underscores(name, label):
    assert label_of(name) == label


@pytest.mark.parametrize(("unit", "one"), [
    ("years", "year"), ("months", "month"), ("days", "day"), ("enquiries", "enquiry"),
    ("INR", "INR"), ("%", "%"), ("% of disposable income", "% of disposable income"),
    ("class", "class"),
])
def test_a_unit_for_a_quantity_of_one(unit, one):
    assert singular(unit) == one


class _Fitted:
    medians_ = {"UrbanRural": 1.0, "term_months": 12.0}
    modes_: dict = {}
    categories_: dict = {}


def test_fields_take_the_spec_label_else_a_split_name(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("""
name: sba
tables: {loans: {source: loans.csv, key: id}}
base: loans
target: {column: default, positive: 1}
columns:
  id: {role: id}
  default: {role: target}
  UrbanRural: {role: numeric}
  term_months: {role: numeric, label: Term of the loan, unit: months}
""")
    labels = {f["name"]: f["label"] for f in input_fields(load_spec(str(path)), _Fitted())}
    assert labels == {"UrbanRural": "Urban rural", "term_months": "Term of the loan"}
