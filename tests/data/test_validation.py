"""The data validation gate: each injected fault (validated in memory, no pipeline run) is a
blocking failure naming the check, column and example values; a bad run stops at the gate and
publishes nothing; a good batch passes and its result is published with the model."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from credit_risk.datasets import synthetic
from credit_risk.pipeline import steps as pipeline
from credit_risk.pipeline.validate import validate_tables
from credit_risk.registry import Registry
from credit_risk.spec.dataset import load_spec
from credit_risk.validation import (
    DataValidationError,
    Report,
    build_suites,
    load_overrides,
    suites_for,
)
from credit_risk.validation.result import ValidationResult
from credit_risk.validation.suites import derived_range
from tests.conftest import ROOT, small_settings


def _copy(tables):
    return {name: df.copy() for name, df in tables.items()}


def missing_column(t):
    t["bureau"] = t["bureau"].drop(columns=["credit_utilization_ratio"])


def renamed_column(t):
    t["customers"] = t["customers"].rename(columns={"income": "annual_income"})


def text_in_numeric(t):
    t["customers"]["age"] = t["customers"]["age"].astype(object)
    t["customers"].loc[5, "age"] = "forty"


def null_keys(t):
    t["loans"].loc[[3, 30], "loan_id"] = None


def duplicate_keys(t):
    t["customers"].loc[10, "cust_id"] = t["customers"].loc[11, "cust_id"]


def negative_income(t):
    t["customers"].loc[7, "income"] = -50000


def utilisation_150(t):
    t["bureau"].loc[8, "credit_utilization_ratio"] = 150


def unknown_category(t):
    t["loans"].loc[9, "loan_purpose"] = "Crypto"


def orphan_loans(t):
    t["loans"].loc[[1, 2], "cust_id"] = ["C99998", "C99999"]


def empty_table(t):
    t["bureau"] = t["bureau"].iloc[0:0]


def one_class_target(t):
    t["loans"]["default"] = False


# fault -> (injection, {blocking check id: example values}, lines the message must hold)
FAULTS = {
    "missing column": (missing_column, {
        "bureau.credit_utilization_ratio.exists": [],
        # the column's other checks cannot run: failed too (hidden in the message)
        "bureau.credit_utilization_ratio.numbers": [], "bureau.credit_utilization_ratio.range": [],
        "bureau.credit_utilization_ratio.nulls": [], "bureau.credit_utilization_ratio.type": []}, [
        "bureau.credit_utilization_ratio: expected column present; the column is missing"]),
    "renamed column": (renamed_column, {
        "customers.income.exists": [], "customers.income.numbers": [],
        "customers.income.range": [], "customers.income.nulls": [],
        "customers.income.missing_values": [], "customers.income.type": []}, [
        "customers.income: expected column present; the column is missing",
        "unexpected columns ['annual_income']"]),
    "wrong type": (text_in_numeric, {
        "customers.age.numbers": ["forty"], "customers.age.type": ["forty"],
        "customers.age.range": []}, [
        "customers.age: expected finite numbers, not text; 1 of 3,000 values fail (0.03%), "
        "e.g. 'forty'", "customers.age: expected a numeric type"]),
    "nulls in a key": (null_keys, {"loans.loan_id.nulls": [3, 30]}, [
        "loans.loan_id: expected no nulls; 2 of 3,000 values are null (0.07%), in rows 3, 30"]),
    "duplicate keys": (duplicate_keys, {
        "customers.cust_id.unique": ["C00012"],
        # C00011 is gone from customers: its loan and bureau rows are orphans now
        "references_loans_customers.cust_id.references": ["C00011"],
        "references_bureau_customers.cust_id.references": ["C00011"],
        "features.table.rows": []}, [
        "customers.cust_id: expected unique (the table's key); 2 of 3,000 values fail (0.07%), "
        "e.g. 'C00012'", "features: expected one row per loans row (the joins add no rows); "
        "observed 3001"]),
    "negative income": (negative_income, {"customers.income.range": [-50000]}, [
        "customers.income: expected values between 0 and 1,000,000,000; 1 of 3,000 values fail "
        "(0.03%), e.g. -50000"]),
    "utilisation 150": (utilisation_150, {"bureau.credit_utilization_ratio.range": [150]}, [
        "bureau.credit_utilization_ratio: expected values between 0 and 100; 1 of 3,000 values "
        "fail (0.03%), e.g. 150"]),
    "unknown category": (unknown_category, {"loans.loan_purpose.categories": ["Crypto"]}, [
        "loans.loan_purpose: expected values in {Home, Personal, Auto, Education, Personaal}; "
        "1 of 3,000 values fail (0.03%), e.g. 'Crypto'"]),
    "orphan loans": (orphan_loans, {
        "references_loans_customers.cust_id.references": ["C99998", "C99999"]}, [
        "references_loans_customers.cust_id: expected every loans.cust_id is a customers.cust_id;"
        " 2 of 3,000 values fail (0.07%), e.g. 'C99998', 'C99999'"]),
    "empty table": (empty_table, {"bureau.table.rows": []}, [
        "bureau: expected 1,000 to 10,000,000 rows; observed 0"]),
    "one-class target": (one_class_target, {
        "loans.default.classes": [], "loans.default.positive_class": []}, [
        "loans.default: expected exactly two classes (default and no default); observed 1",
        "loans.default: expected the default class True is present; not found: True"]),
}
# Faults that cannot hide one another are validated together, once per group.
GROUPS = [("wrong type", "nulls in a key", "negative income", "utilisation 150",
           "unknown category", "orphan loans"),
          ("missing column", "renamed column", "one-class target"),
          ("duplicate keys",),  # its orphans and extra joined rows would mix with other faults
          ("empty table",)]
assert sorted(f for group in GROUPS for f in group) == sorted(FAULTS)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("validation")


def _settings(base: Path, name: str):
    return small_settings(base / name)


def _validate(tables, base: Path, faults) -> Report:
    bad = _copy(tables)
    for fault in faults:
        FAULTS[fault][0](bad)
    name = "_".join(faults).replace(" ", "_")
    return validate_tables(load_spec("lauki_synthetic"), bad, base / name / "validation",
                           _settings(base, name))


@pytest.fixture(scope="module")
def report_of(tables, base):
    """The report of a group of faults, validated on first use."""
    reports: dict[tuple[str, ...], Report] = {}

    def report(group: tuple[str, ...]) -> Report:
        if group not in reports:
            reports[group] = _validate(tables, base, group)
        return reports[group]
    return report


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_a_blocking_failure_naming_check_column_and_examples(fault, report_of):
    _, expected, lines = FAULTS[fault]
    injected = next(group for group in GROUPS if fault in group)
    report = report_of(injected)
    failures = {o.id: o for o in report.failures}
    # exactly the failures of the injected faults: none hides another, nothing else fails
    assert set(failures) == {check for f in injected for check in FAULTS[f][1]}, report.message()
    for check, examples in expected.items():
        outcome = failures[check]
        where, column, _ = check.split(".")
        assert outcome.batch == where and outcome.severity == "blocking"
        assert outcome.column == (None if column == "table" else column)
        assert outcome.examples == examples, outcome.line()
    message = report.message()
    assert message.startswith("data validation failed for dataset 'lauki_synthetic'")
    for text in lines:
        assert text in message, message
    # The failing result is kept: the JSON (the same failures) and its Data Docs.
    result = ValidationResult.read(report.path)
    assert result.success is False
    assert {f.id for f in result.blocking_failures} == set(failures)
    assert report.docs.is_file() and report.docs.name == "index.html"


def test_a_bad_batch_stops_the_run_at_the_gate(tables, base):
    """End to end in-process (the DAG's own run is in tests/e2e): the run stops at validation,
    prepares, trains and publishes nothing, and keeps the failing result with the run."""
    settings = _settings(base, "run")
    bad = _copy(tables)
    utilisation_150(bad)
    synthetic.write(bad, settings.data.dir / "lauki_synthetic")

    with pytest.raises(DataValidationError) as info:
        pipeline.run_all(settings, "bad-run")
    message = str(info.value)
    assert message.startswith("data validation failed for dataset 'lauki_synthetic': "
                              "1 blocking expectation failed")
    assert FAULTS["utilisation 150"][2][0] in message
    run = settings.data.runs_dir / "bad-run"
    assert not (run / "split").exists() and not (run / "candidates").exists()
    assert Registry(settings.registry.url).versions() == []
    result = ValidationResult.read(run / "validation" / "validation.json")
    assert result.success is False
    assert [f.id for f in result.blocking_failures] == [
        "bureau.credit_utilization_ratio.range"]
    assert (run / "validation" / "data_docs" / "index.html").is_file()


def test_good_batch_passes_and_writes_result_and_data_docs(tables, base):
    settings = _settings(base, "good")
    synthetic.write(tables, settings.data.dir / "lauki_synthetic")
    snapshot = pipeline.ingest_step(settings, "good-run")
    path = Path(pipeline.validate_step(settings, snapshot))
    result = ValidationResult.read(path)
    assert result.success is True and result.blocking_failures == []
    assert set(result.statistics) == {"customers", "loans", "bureau", "features",
                                         "references_loans_customers",
                                         "references_bureau_customers"}
    assert all(s.success for s in result.statistics.values())
    docs = path.parent / "data_docs"
    pages = [p.name for p in docs.rglob("*.html")]
    assert "index.html" in pages and any("features" in p for p in pages)
    summary = (docs / "summary.html").read_text()  # plain HTML: readable without the CDNs
    assert "lauki_synthetic: PASSED" in summary and 'href="summary.html"' in (
        docs / "index.html").read_text()
    linked = re.findall(r'href="([^"]+)"', summary)
    assert len(linked) == 13 and all((docs / href).is_file() for href in linked)
    assert result.data_fingerprint == json.loads(Path(snapshot).read_text())["fingerprint"]


def test_warning_is_recorded_but_does_not_stop(tables, base):
    """0.7% missing residence types: over the 0.5% warning level, under the 1% limit."""
    t = _copy(tables)
    t["customers"].loc[:20, "residence_type"] = None
    settings = _settings(base, "warning")
    report = validate_tables(load_spec("lauki_synthetic"), t, base / "warning" / "v", settings)
    assert report.success
    assert [w.id for w in report.warnings] == ["customers.residence_type.nulls_warning"]
    stored = ValidationResult.read(report.path)
    assert stored.success and stored.warnings[0].severity == "warning"
    assert "warnings (recorded, not blocking): 1" in report.message()

    # Severity is configurable: by check-id pattern in the settings (or the overrides file).
    by_id = settings.model_copy(
        update={"validation_severity": {"customers.residence_type.nulls_*": "blocking"}})
    report = validate_tables(load_spec("lauki_synthetic"), t, base / "warning" / "b", by_id)
    assert [f.id for f in report.failures] == ["customers.residence_type.nulls_warning"]


def test_strict_mode_and_patterns_set_severities():
    spec = load_spec("lauki_synthetic")
    assert {c.severity for c in build_suites(spec, strict=True).all()} == {"blocking"}
    suites = build_suites(spec, severity={"customers.*": "warning"})
    customers = {c.severity for c in suites.checks["customers"]}
    assert customers == {"warning"} and suites.checks["customers"][0].source == "settings"
    assert "blocking" in {c.severity for c in suites.checks["loans"]}


def test_more_blocking_checks_in_one_batch(tables, base):
    """Too many nulls, impossible ratios and an infinity, each named with its column."""
    t = _copy(tables)
    t["customers"].loc[:59, "residence_type"] = None  # 2% > the spec's max_null_rate 1%
    t["bureau"].loc[4, ["delinquent_months", "total_loan_months"]] = [50, 10]
    balance = t["loans"]["bank_balance_at_application"].astype(float)
    t["loans"]["bank_balance_at_application"] = balance.where(balance.index != 6, np.inf)
    report = validate_tables(load_spec("lauki_synthetic"), t, base / "more" / "v",
                             _settings(base, "more"))
    message = report.message()
    n = t["customers"]["residence_type"].isna().sum()
    assert f"customers.residence_type: expected at most 1.00% nulls; {n} of 3,000 values are " \
           f"null ({n / 3000:.2%}), in rows 0, 1, 2, 3, 4" in message
    assert {f.id for f in report.failures} >= {
        "bureau.total_loan_months.delinquent_within_history",  # from the overrides file
        "features.delinquency_ratio.range",  # the feature table: 50 / 10 = 5 > 1
        "loans.bank_balance_at_application.numbers"}
    assert "features.delinquency_ratio: expected values between 0 and 1 " in message
    assert "e.g. 5  [features.delinquency_ratio.range]" in message
    assert "e.g. inf" in message


def test_suites_are_derived_from_the_spec():
    spec = load_spec("lauki_synthetic")
    suites = build_suites(spec)
    ids = {c.id: c for c in suites.all()}
    assert ids["customers.cust_id.unique"].severity == "blocking"
    assert ids["bureau.cust_id.unique"].severity == "blocking"
    assert "loans.cust_id.unique" not in ids  # a foreign key, not the loans' key
    assert ids["loans.loan_purpose.categories"].kwargs["value_set"] == [
        "Home", "Personal", "Auto", "Education", "Personaal"]
    assert ids["customers.income.missing_values"].kwargs["value_set"] == [0]
    assert ids["customers.residence_type.nulls"].kwargs["mostly"] == 0.99
    assert ids["customers.residence_type.nulls_warning"].severity == "warning"
    assert ids["customers.city.exists"].severity == "warning"  # ignored by the model
    assert ids["loans.default.classes"].kwargs == {"column": "default", "min_value": 2,
                                                   "max_value": 2}
    assert [(r.child, r.parent) for r in suites.references] == [("loans", "customers"),
                                                                 ("bureau", "customers")]
    # Derived ratios get bounds from the spec's column bounds (x / 0 is 0).
    assert derived_range(spec, "delinquent_months / total_loan_months") == (0, 1200)
    assert derived_range(spec, "loan_amount / income") == (None, None)
    # A new spec gets suites without any hand-written file.
    german = build_suites(load_spec("german_credit"))
    assert "applications.duration_in_month.range" in {c.id for c in german.all()}


def test_overrides_tighten_the_suites():
    spec = load_spec("lauki_synthetic")
    overrides = load_overrides(ROOT / "great_expectations", spec.name)
    ids = {c.id: c for c in build_suites(spec, overrides).all()}
    assert ids["features.delinquency_ratio.range"].kwargs["max_value"] == 1
    assert ids["features.delinquency_ratio.range"].source == "override"
    assert ids["features.loan_to_income.range"].severity == "warning"
    assert ids["loans.table.rows"].kwargs["min_value"] == 1000


def test_committed_gx_context_is_up_to_date(tmp_path):
    """great_expectations/ holds exactly what `make gx-suites` writes from spec + overrides."""
    from credit_risk.validation import export_suites

    committed = ROOT / "great_expectations"
    copy = tmp_path / "great_expectations"
    shutil.copytree(committed, copy, ignore=shutil.ignore_patterns("uncommitted"))
    settings = small_settings(tmp_path, gx_dir=copy, validation_min_rows=100,
                              validation_max_rows=None, validation_null_warning=0.5)
    for name in ("lauki_synthetic", "german_credit"):
        export_suites(load_spec(name), settings)
    for sub in ("expectations", "checkpoints", "validation_definitions"):
        for path in (committed / sub).rglob("*.json"):
            assert path.read_text() == (copy / path.relative_to(committed)).read_text(), (
                f"{path} is stale: run `make gx-suites`")
    assert (committed / "great_expectations.yml").read_text() == (
        copy / "great_expectations.yml").read_text()


def test_committed_checkpoint_runs_in_the_file_context(tables):
    """The committed context works with GX on its own (as the checkpoints are documented)."""
    import great_expectations as gx

    context = gx.get_context(mode="file", context_root_dir=str(ROOT / "great_expectations"))
    checkpoint = context.checkpoints.get("lauki_synthetic.customers")
    # Run the validation definition (a checkpoint would also write local Data Docs).
    vd = checkpoint.validation_definitions[0]
    suite = vd.suite
    assert {e.severity.value for e in suite.expectations} == {"critical", "warning"}
    batch = vd.batch_definition.get_batch(batch_parameters={"dataframe": tables["customers"]})
    assert batch.validate(suite).success


def test_published_version_carries_the_passing_validation(trained):
    settings, version = trained
    registry = Registry(settings.registry.url)
    manifest = registry.verify(version)
    assert manifest["validation"]["success"] is True
    result = ValidationResult.loads(registry.read_file(version, "validation.json"), version)
    assert result.success and result.data_fingerprint == manifest["data_fingerprint"]
    docs = zipfile.ZipFile(__import__("io").BytesIO(registry.read_file(version, "data_docs.zip")))
    assert "index.html" in docs.namelist()


def test_suites_for_uses_settings(base):
    settings = _settings(base, "s").model_copy(update={"validation_min_rows": 5})
    suites = suites_for(load_spec("german_credit"), settings)
    rows = next(c for c in suites.all() if c.id == "applications.table.rows")
    assert rows.kwargs["min_value"] == 5


@pytest.mark.parametrize("values", [
    np.array([0, -7, 2**62, 12], dtype=np.int64), np.array([0, 3, 255], dtype=np.uint8),
    np.array([1.5, -0.0, 1e16, 1e-7, np.inf, -np.inf, 3.0, 1e308 * 10], dtype=float),
    np.array([0.1, np.inf, 2.5e10], dtype=np.float32)])
def test_the_number_check_without_text_answers_as_the_text_match(values):
    """The fast path of the "finite numbers, not text" regex on numeric dtypes gives GX's own
    answer (each value as text, matched): integers always, floats when finite."""
    import pandas as pd

    from credit_risk.validation.gx_run import number_regex_condition
    from credit_risk.validation.suites import NUMBER_RE

    column = pd.Series(values, index=range(10, 10 + len(values)))
    fast = number_regex_condition(column, NUMBER_RE)
    assert fast is not None
    pd.testing.assert_series_equal(fast, column.astype(str).str.contains(NUMBER_RE),
                                   check_names=False)
    assert number_regex_condition(column.astype(object), NUMBER_RE) is None  # text: GX's way
    assert number_regex_condition(column > 0, NUMBER_RE) is None  # "True" is not a number
    assert number_regex_condition(column, r"^\d+$") is None  # another regex: GX's way


def test_great_expectations_leaves_the_callers_frames_alone(tables, base):
    """Validation runs with pandas copy-on-write (GX filters whole frames per expectation):
    the caller's tables are not changed, and the mode ends with the run."""
    import pandas as pd

    before = _copy(tables)
    validate_tables(load_spec("lauki_synthetic"), tables, base / "cow" / "v",
                    _settings(base, "cow"))
    for name, df in tables.items():
        pd.testing.assert_frame_equal(df, before[name])
    assert pd.get_option("mode.copy_on_write") is False
