"""A published version carries its validation report: signed with the rest, in the card."""

import json

import numpy as np

from credit_risk.pipeline.steps import load_part, split_spec
from credit_risk.pipeline.validation_report.model import PLOT_FILE, REPORT_FILE, ValidationReport
from credit_risk.registry import Registry
from credit_risk.scoring.grades import MasterScale


def test_the_report_is_a_verified_file_of_the_version_and_in_the_card(trained):
    settings, version = trained
    registry = Registry.from_settings(settings)
    manifest = registry.verify(version)  # every listed file's SHA-256 checked
    assert {REPORT_FILE, PLOT_FILE} <= set(manifest["files"])
    report = ValidationReport.loads(registry.read_file(version, REPORT_FILE), REPORT_FILE)
    assert registry.read_file(version, PLOT_FILE)[:4] == b"\x89PNG"
    # the same model on the same test rows as the comparison
    metrics = manifest["metrics"]
    assert report.model == manifest["model"] and report.test_rows == metrics["n"]
    assert report.discrimination.roc_auc == metrics["roc_auc"]
    assert report.discrimination.ks == metrics["ks"]
    # every spec segment and protected column, each group's rows adding up to the test set
    split_dir = settings.data.runs_dir / "fixture-run" / "split"
    spec, info = split_spec(str(split_dir))
    fields = {s.field: s for s in report.segments}
    assert set(fields) == {*spec.protected_columns(), *spec.segments}
    assert all(sum(g.n for g in s.groups) == report.test_rows for s in fields.values())
    cal = report.calibration
    assert sum(g.n for g in cal.grades) + cal.outside_scale == report.test_rows
    assert sum(g.defaults for g in cal.grades) == report.discrimination.defaults
    assert cal.grades_from == "master scale" and cal.outside_scale == 0
    assert [g.grade for g in cal.grades] == list(MasterScale.default().names)
    assert report.stability.train_rows == info.train_rows
    assert np.isclose(sum(s.test_share for s in report.stability.shares), 1)
    assert report.importance is not None
    assert {f.feature for f in report.importance.features} == set(manifest["features"])
    expected = {"xgboost": "xgboost_contributions",
                "logistic_regression": "standardised_coefficients"}[manifest["model"]]
    assert report.importance.method == expected
    card = registry.read_file(version, "model_card.md").decode()
    assert "## Validation report" in card and f"]({PLOT_FILE})" in card
    assert card.index("## Validation report") < card.index("## Provenance")
    html = registry.read_file(version, "model_card.html").decode()
    assert "Calibration per grade" in html and PLOT_FILE in html
    X, y = load_part(str(split_dir), "test")
    assert len(y) == report.test_rows
    assert json.loads(report.dumps())["calibration"]["portfolio"]["n"] == len(y)
