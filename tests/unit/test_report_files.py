"""The reports runs write (comparison, split, drift, performance, validation): each file reads
back as the report written, and a corrupt or hand-edited one is a ReportError naming the file
and the field, never a KeyError further on."""

import json

import pytest

from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.run_reports import (
    Comparison,
    DriftReport,
    PerformanceReport,
    ReportError,
    SplitRecord,
    Thresholds,
    read_report,
    write_report,
)
from credit_risk.validation.result import ValidationResult

AT = "2026-12-01T00:00:00+00:00"
METRICS = {"roc_auc": 0.8, "gini": 0.6, "ks": 0.5, "pr_auc": 0.4, "brier": 0.1, "ece": 0.02,
           "threshold": 0.3, "precision": 0.5, "recall": 0.6, "f1": 0.55, "default_rate": 0.1,
           "flagged_rate": 0.2, "n": 600}
SPLIT = {"dataset": "lauki", "data_fingerprint": "f" * 64, "train_rows": 2400, "test_rows": 600,
         "train_default_rate": 0.1, "test_default_rate": 0.1,
         "split_rule": {"key": None, "seed": 42, "test_size": 0.2}, "test_fingerprint": "t" * 64}


def candidate(model: str, cv: float) -> dict:
    return {"model": model, "cv_roc_auc": cv,
            "test": {**METRICS, "ece_uncalibrated": 0.05, "brier_uncalibrated": 0.12},
            "path": f"/runs/r/candidates/{model}.joblib", "params": {"C": 1.0},
            "validation": {"ece_calibrated": 0.01}, "search": [{"trial": 1}],
            "fit_seconds": 1.5, "threshold": 0.3}


def comparison() -> dict:
    row = {"bin": "0.0-0.1", "n": 300, "mean_pd": 0.05, "default_rate": 0.04}
    return {"dataset": "lauki", "data_fingerprint": "f" * 64, "test_rows": 600, "split": SPLIT,
            "candidates": [candidate("lr", 0.78), candidate("xgboost", 0.81)],
            "selected": "xgboost",
            "champion": {"version": "v1", "comparable": True, **METRICS},
            "fairness": {"min_ratio": 0.8, "min_group_size": 30, "passed": True,
                         "attributes": {"gender": {"groups": [
                             {"group": "F", "n": 300, "approval_rate": 0.8, "counted": True}],
                             "ratio": None, "passed": True}}},
            "gate": {"min_roc_auc": 0.7, "max_ece": 0.05, "min_approval_ratio": 0.8,
                     "champion_margin": 0.0},
            "reliability": {"calibrated": [row], "uncalibrated": [row]},
            "approved": True, "rejection_reasons": []}


def drift() -> dict:
    return {"run_id": "daily-1", "at": AT, "psi_threshold": 0.25, "drift": True, "status": "ok",
            "champion": "v1", "dataset": "lauki", "reference_rows": 5000, "current_rows": 600,
            "window_days": 7, "drifted_fields": ["income"],
            "psi": [{"field": "income", "psi": 0.4}, {"field": "age", "psi": 0.01}],
            "psi_rows": 600, "evidently_sample_rows": 600,
            "evidently": {"count": 1, "share": 0.5}, "report": "drift_report.html",
            "plot": "psi.png"}


def figures(**extra) -> dict:
    band = {"rating": "Poor", "n": 10, "defaults": 5, "default_rate": 0.5, "mean_pd": None}
    return {"n": 10, "defaults": 5, "default_rate": 0.5, "mean_pd": 0.4,
            "calibration_gap": 0.1, "calibration_z": None, "roc_auc": 0.7, "gini": 0.4,
            "ks": 0.3, "pr_auc": None, "brier": 0.2, "bands": [band], **extra}


def performance() -> dict:
    alert = {"model_version": "v1", "vintage": "2025-01", "metric": "roc_auc", "value": 0.7,
             "training": 0.8, "limit": 0.05, "message": "roc_auc dropped"}
    vintage = figures(vintage="2025-01", alerts=[alert])
    version = figures(model_version="v1", alerts=[], vintages=[vintage],
                      training={"roc_auc": 0.8, "ks": None, "brier": 0.1, "default_rate": 0.1})
    return {"run_id": "daily-1", "at": AT, "decided_since": "2025-01-01T00:00:00+00:00",
            "decided_until": "2025-02-01T00:00:00+00:00", "alert": True, "alerts": [alert],
            "versions": [version], "status": "ok", "decisions_log": "decisions.jsonl",
            "outcomes": "outcomes.jsonl", "as_of": AT,
            "thresholds": Thresholds().model_dump(), "matured_with_outcome": 10,
            "matured_without_outcome": 2, "decisions": 12, "outcomes_read": 11,
            "plot": "performance.png"}


def validation() -> dict:
    failure = {"id": "loans.amount.range", "batch": "loans", "column": "amount",
               "check": "range", "type": "expect_column_values_to_be_between",
               "expected": "between 0 and 1", "severity": "blocking", "source": "spec",
               "observed": "3 of 10 values fail", "examples": [2.5, "inf"],
               "examples_label": "e.g.", "unexpected_count": 3, "element_count": 10,
               "evaluated": True}
    stats = {"success": False, "evaluated_expectations": 4, "successful_expectations": 3,
             "unsuccessful_expectations": 1}
    return {"dataset": "lauki", "success": False, "validated_at": AT, "snapshot": "/s.json",
            "data_fingerprint": "f" * 64, "tables": {"loans": 10}, "summary": "FAILED: ...",
            "blocking_failures": [failure], "warnings": [], "not_run": {"features": "why"},
            "statistics": {"loans": stats},
            "checks": {"loans": [{"id": "loans.amount.range", "type": "between",
                                  "expected": "between 0 and 1", "severity": "blocking",
                                  "source": "spec"}]},
            "gx_results": {"loans": "gx_results/lauki.loans.json"},
            "data_docs": "data_docs/index.html", "great_expectations_version": "1.0",
            "seconds": 1.25}


REPORTS = [
    (Comparison, comparison),
    (SplitRecord, lambda: {**SPLIT, "spec": {"name": "lauki"}}),
    (DriftReport, drift),
    (PerformanceReport, performance),
    (ValidationResult, validation),
]
IDS = [kind.__name__ for kind, _ in REPORTS]


@pytest.mark.parametrize("kind,raw", REPORTS, ids=IDS)
def test_a_report_reads_back_as_written_with_the_same_json(tmp_path, kind, raw):
    report = kind.model_validate(raw())
    path = write_report(report, tmp_path / "report.json")
    assert read_report(kind, path) == report
    assert json.loads((tmp_path / "report.json").read_text()) == raw()


@pytest.mark.parametrize("kind,raw", REPORTS, ids=IDS)
def test_a_hand_edited_file_names_the_file_and_the_field(tmp_path, kind, raw):
    data = raw()
    name = next(iter(data))
    data[name] = {"not": "this"}  # the first field, of the wrong type
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=rf"edited\.json: not a valid {kind.KIND}: {name}: "):
        read_report(kind, path)
    data = raw()
    del data[name]
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=rf"{name}: Field required"):
        read_report(kind, path)


@pytest.mark.parametrize("kind,raw", REPORTS, ids=IDS)
def test_a_misspelt_key_is_refused_not_ignored(tmp_path, kind, raw):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({**raw(), "statuss": "ok"}))
    with pytest.raises(ReportError, match="statuss: Extra inputs are not permitted"):
        read_report(kind, path)


@pytest.mark.parametrize("text", ["", "{", b"\xff\xfe", "[1, 2]", "null"])
def test_a_corrupt_file_is_a_report_error(tmp_path, text):
    path = tmp_path / "drift.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ReportError, match=r"drift\.json: not a (valid )?drift report") as info:
        read_report(DriftReport, path)
    assert isinstance(info.value, CreditRiskError)


def test_a_missing_file_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="no such comparison report"):
        read_report(Comparison, tmp_path / "comparison.json")
    with pytest.raises(ReportError, match="no such validation result"):
        ValidationResult.read(tmp_path / "validation.json")


def test_a_nested_field_is_named_by_its_path(tmp_path):
    data = comparison()
    data["candidates"][1]["test"]["roc_auc"] = "high"
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"candidates\.1\.test\.roc_auc: Input should be"):
        read_report(Comparison, path)


@pytest.mark.parametrize("edit,why", [
    (lambda c: c.update(selected="rf"), "'rf' is not one of the candidates"),
    (lambda c: c.update(approved=False), "approved: contradicts rejection_reasons"),
    (lambda c: c.update(candidates=[]), "candidates: List should have at least 1 item"),
    (lambda c: c["champion"].pop("roc_auc"), "champion.comparable.roc_auc: Field required"),
    (lambda c: c.update(champion={"version": "v1", "comparable": False}),
     "champion.incomparable.note: Field required"),
])
def test_a_comparison_must_agree_with_itself(edit, why):
    data = comparison()
    edit(data)
    with pytest.raises(ReportError, match=why):
        Comparison.parse(data, "comparison.json")


def test_the_selected_candidate_and_an_incomparable_champion():
    data = comparison()
    data["champion"] = {"version": None, "comparable": False, "note": "no alias record"}
    report = Comparison.parse(data, "comparison.json")
    assert report.selected_candidate.model == "xgboost"
    assert report.champion is not None and not report.champion.comparable
    assert report.to_dict()["champion"] == data["champion"]


def test_a_short_drift_report_keeps_its_short_shape():
    report = DriftReport(run_id="r", at=AT, psi_threshold=0.25, drift=False,
                         status="no champion")
    assert json.loads(report.dumps()) == {"run_id": "r", "at": AT, "psi_threshold": 0.25,
                                          "drift": False, "status": "no champion"}
    assert report.psi == [] and report.drifted_fields == [] and report.champion is None


def test_a_performance_alert_flag_must_match_its_alerts():
    data = performance()
    data["alert"] = False
    with pytest.raises(ReportError, match="alert: contradicts alerts"):
        PerformanceReport.parse(data, "performance.json")


def test_a_validation_result_must_agree_with_its_failures():
    data = validation()
    data["success"] = True
    with pytest.raises(ReportError, match="success: contradicts blocking_failures"):
        ValidationResult.parse(data, "validation.json")


def test_reports_are_frozen():
    report = DriftReport.model_validate(drift())
    with pytest.raises(ValueError, match="frozen"):
        report.drift = False  # type: ignore[misc]


def test_nested_defaults_are_written_whole_and_a_nan_reads_back(tmp_path):
    data = performance()
    data["versions"][0]["calibration_gap"] = float("nan")
    report = PerformanceReport.model_validate({**data, "thresholds": Thresholds()})
    path = write_report(report, tmp_path / "performance.json")
    written = json.loads((tmp_path / "performance.json").read_text())
    assert written["thresholds"] == Thresholds().model_dump() and written["thresholds"]
    again = read_report(PerformanceReport, path)
    assert again.thresholds == Thresholds()
    assert again.versions[0].calibration_gap != again.versions[0].calibration_gap  # NaN
