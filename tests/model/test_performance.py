"""Performance on matured loans: the generator's shifted outcomes, scored by a model trained on
unshifted data, trip the alerts; unshifted outcomes do not."""

from __future__ import annotations

import csv
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from credit_risk.cli.predict import Batch
from credit_risk.cli.predict_io import read_chunks
from credit_risk.datasets import synthetic
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.performance import (
    PerformanceDataError,
    Thresholds,
    decisions_frame,
    performance_report,
)
from credit_risk.records.backends import decision_log_at
from credit_risk.registry import Registry
from credit_risk.scoring.bands import NAMES
from credit_risk.scoring.scorer import Scorer
from credit_risk.spec.dataset import load_spec


def batch(tmp_path, n: int, seed: int, shift: bool, months: tuple[str, str], prefix: str):
    """A generated batch decided (= disbursed) over two months: the applications CSV as
    `generate-data --applications` writes it, and its outcomes as `--outcomes` does."""
    spec = load_spec("lauki_synthetic")
    tables = synthetic.generate(n, seed=seed, shift=shift)
    rng = np.random.default_rng(seed)
    start = np.where(rng.random(n) < 0.5, *(np.datetime64(m) for m in months))
    dates = pd.to_datetime(start) + pd.to_timedelta(rng.integers(0, 28, n), "D")
    tables["loans"]["disbursal_date"] = dates.date
    tables["loans"]["loan_id"] = prefix + tables["loans"]["loan_id"]
    path = tmp_path / f"{prefix}apps.csv"
    assemble(spec, tables).drop(columns=[spec.target.column]).to_csv(path, index=False)
    return path, synthetic.outcomes(tables, seed)


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory):
    """Both batches scored through `predict` by the champion trained on unshifted data; the
    decisions as read back from the decision log, dated by their application's decision date."""
    settings, version = trained
    tmp = tmp_path_factory.mktemp("perf")
    scorer = Scorer.load(Registry(settings.registry.url), version)
    log = decision_log_at(tmp / "decisions.jsonl")
    outcomes, dates, refused = [], {}, []
    for shift, months, prefix in ((False, ("2023-01", "2023-02"), "R"),
                                  (True, ("2023-03", "2023-04"), "S")):
        path, outcome = batch(tmp, 6000, 21 + shift, shift, months, prefix)
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        scoring = Batch(scorer, log, f"perf-{prefix}")
        for chunk in read_chunks(path):
            scoring.score(chunk)
        refused += [rows[number - 1] for number, _ in scoring.errors]
        dates.update({r["loan_id"]: r["disbursal_date"] for r in rows})
        outcomes.append(outcome)
    assert refused == []  # the generator's "Personaal" typos are cleaned, as in training
    decisions = decisions_frame(log.read())
    assert len(decisions) == 12_000 - len(refused)  # predict recorded each application's id
    assert not set(decisions["application_id"]) & {r["loan_id"] for r in refused}
    decisions["decided_at"] = decisions["application_id"].map(dates)
    manifest = Registry(settings.registry.url).manifest(version)
    return decisions, pd.concat(outcomes, ignore_index=True), {version: manifest}, version


AS_OF = datetime(2024, 6, 1)


def test_the_shifted_vintages_alert_and_the_unshifted_do_not(scored):
    decisions, outcomes, training, version = scored
    report = performance_report(decisions, outcomes, AS_OF, training)
    assert report.matured_with_outcome == len(decisions)
    assert report.matured_without_outcome == 0
    (entry,) = report.versions
    vintages = {v.vintage: v for v in entry.vintages}
    assert sorted(vintages) == ["2023-01", "2023-02", "2023-03", "2023-04"]
    recorded = training[version]["metrics"]
    for month in ("2023-01", "2023-02"):
        v = vintages[month]
        assert v.alerts == [], v.alerts
        assert abs(v.roc_auc - recorded["roc_auc"]) < 0.04
        assert abs(v.calibration_gap) < 0.02
    for month in ("2023-03", "2023-04"):
        v = vintages[month]
        fired = {a.metric for a in v.alerts}
        assert {"roc_auc", "calibration_gap"} <= fired, v.alerts
        assert v.roc_auc < recorded["roc_auc"] - 0.05
        assert v.calibration_gap > 0.03  # more defaults than the model's PDs say
        assert v.brier > recorded["brier"]
    assert report.alert and {a.vintage for a in report.alerts} >= {"2023-03", "2023-04"}
    assert not {a.vintage for a in report.alerts} & {"2023-01", "2023-02"}


def test_each_batch_alone(scored):
    decisions, outcomes, training, _ = scored
    reference = decisions[decisions["application_id"].str.startswith("R")]
    shifted = decisions[decisions["application_id"].str.startswith("S")]
    assert not performance_report(reference, outcomes, AS_OF, training).alert
    report = performance_report(shifted, outcomes, AS_OF, training)
    (entry,) = report.versions
    assert {a.metric for a in entry.alerts} >= {"roc_auc", "calibration_gap"}


def test_bands_and_maturity(scored):
    decisions, outcomes, training, _ = scored
    # On 2024-03-31 the April vintage (decided 2023-04-01..28) has not been on book 12 months.
    report = performance_report(decisions, outcomes, datetime(2024, 3, 31), training)
    (entry,) = report.versions
    assert [v.vintage for v in entry.vintages] == ["2023-01", "2023-02", "2023-03"]
    early = decisions["decided_at"] < "2023-04-01"
    assert entry.n == sum(v.n for v in entry.vintages) == early.sum()
    bands = {b.rating: b for b in entry.vintages[0].bands}
    assert list(bands) == list(NAMES)
    assert sum(b.n for b in bands.values()) == entry.vintages[0].n
    rates = [bands[n].default_rate for n in NAMES if bands[n].n >= 50]
    assert rates == sorted(rates, reverse=True)  # Poor defaults most, Excellent least


def test_window_duplicates_and_unknown_outcomes():
    decisions = pd.DataFrame({
        "application_id": ["a", "b", "c", "d", "e", "a"],
        "decided_at": ["2023-01-10T09:00:00+00:00"] * 4 + ["2024-01-01", "2022-01-01"],
        "model_version": ["v1"] * 6,
        "probability_of_default": [0.9, 0.1, 0.2, 0.3, 0.5, 0.4],
        "rating": ["Poor", "Excellent", "Good", "Good", "Average", "Average"],
    })
    outcomes = pd.DataFrame({
        "application_id": ["a", "a", "b", "c", "e"],
        "defaulted": ["yes", "no", "Yes", "0", "true"],
        "observed_at": ["2023-05-01", "2023-02-01", "2024-03-01", "2024-01-10", "2024-02-01"],
    })
    report = performance_report(decisions, outcomes, datetime(2024, 6, 1), {},
                                Thresholds(min_loans=1, min_defaults=1))
    (entry,) = report.versions
    # a: latest decision (2023-01-10) kept, its default (2023-05-01) wins over an earlier
    # good record; b: defaulted after its 12-month window: good; c: good; d: matured without
    # an outcome; e: decided 2024-01-01, not matured.
    assert entry.n == 3 and entry.defaults == 1
    assert report.matured_without_outcome == 1
    assert entry.roc_auc == 1.0 and entry.alerts == []  # no training figures: no drop
    assert entry.mean_pd == pytest.approx(0.4)


def test_small_groups_are_not_judged_and_bad_data_is_named():
    decisions = pd.DataFrame({"application_id": ["a", "b"], "decided_at": ["2020-01-01"] * 2,
                              "model_version": ["v1"] * 2, "probability_of_default": [0.01, 0.02],
                              "rating": ["Excellent"] * 2})
    outcomes = pd.DataFrame({"application_id": ["a", "b"], "defaulted": [True, True],
                             "observed_at": ["2020-02-01"] * 2})
    report = performance_report(decisions, outcomes, datetime(2022, 1, 1),
                                {"v1": {"roc_auc": 0.9, "ks": 0.7}})
    assert report.versions[0].calibration_gap > 0.9 and not report.alert
    with pytest.raises(PerformanceDataError, match="outcomes: no column defaulted"):
        performance_report(decisions, outcomes.drop(columns="defaulted"), datetime(2022, 1, 1),
                           {})
    with pytest.raises(PerformanceDataError, match="defaulted 'maybe' is not"):
        performance_report(decisions, outcomes.assign(defaulted="maybe"), datetime(2022, 1, 1),
                           {})


def test_decisions_frame_reads_log_records():
    records = [
        {"at": "2024-01-01T00:00:00+00:00", "inputs": {"application_id": "L1", "age": 30},
         "model_version": "v1", "probability_of_default": 0.2, "rating": "Good"},
        {"at": "2024-01-02T00:00:00+00:00", "inputs": {"age": 31}, "model_version": "v1",
         "probability_of_default": 0.3, "rating": "Good"},  # no id: cannot be joined
    ]
    frame = decisions_frame(records)
    assert frame.to_dict("records") == [
        {"application_id": "L1", "decided_at": "2024-01-01T00:00:00+00:00",
         "model_version": "v1", "probability_of_default": 0.2, "rating": "Good"}]
