"""End to end: loans decided by the champion 17-18 months ago, their observed outcomes loaded by
`credit-risk outcomes load`, the monitoring DAG's performance task. A shifted batch (its
defaults driven harder than the model learned) alerts and emits the drift Asset; an unshifted
one does not. On the JSONL backends and once with decisions and outcomes in PostgreSQL."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import UTC, datetime

import pandas as pd
import psycopg
import pytest

from credit_risk.cli import main
from credit_risk.config import Settings
from credit_risk.pipeline.run_paths import monitoring_dir
from credit_risk.records.backends import decision_log_at, open_decision_log
from credit_risk.registry import Registry
from credit_risk.scoring.decide import decide
from credit_risk.scoring.scorer import Scorer
from credit_risk.spec.fields import validate_application
from tests.e2e import test_monitoring_dag as monitoring
from tests.e2e.test_monitoring_dag import _drift_events, _run, _setup
from tests.model.test_performance import batch
from tests.records import pg

pytestmark = pytest.mark.slow
pg_server, schema = pg.pg_server, pg.schema  # the decision log tests' fixtures
airflow_db = monitoring.airflow_db


def months_ago(n: int) -> str:
    return (pd.Timestamp(datetime.now(UTC).date()) - pd.DateOffset(months=n)).strftime("%Y-%m")


def log_matured_batch(settings: Settings, tmp_path, shift: bool, n: int = 3000) -> int:
    """A generated batch decided 18 and 17 months ago: scored by the champion, recorded in the
    decision log (each with its application id), then dated to its decision day; its outcomes
    loaded with `credit-risk outcomes load`. The number of decisions."""
    registry = Registry(settings.registry.url)
    scorer = Scorer.load(registry, registry.alias_version("champion"))
    apps, outcomes = batch(tmp_path, n, 31 + shift, shift, (months_ago(18), months_ago(17)),
                           "S" if shift else "R")
    with apps.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_day: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        record = {f["name"]: _cell(f, row[f["name"]]) for f in scorer.fields}
        clean, errors = validate_application(scorer.fields, record, scorer.rules)
        if not errors:
            by_day[row["disbursal_date"]].append({**clean, "application_id": row["loan_id"]})
    dlog = open_decision_log(settings)
    assert dlog is not None
    try:
        for day, inputs in by_day.items():
            decide(scorer, inputs, dlog, f"batch-{day}")
    finally:
        dlog.close()
    _backdate(settings)
    path = tmp_path / "outcomes.csv"
    outcomes.to_csv(path, index=False)
    assert main(["outcomes", "load", str(path)]) == 0
    return sum(len(v) for v in by_day.values())


def _cell(field: dict, cell: str):
    from credit_risk.cli.predict import parse_cell

    return parse_cell(field, cell)


def _backdate(settings: Settings) -> None:
    """Each decision's time set to its request's day (batch-<day>), as if decided then."""
    target = settings.decisions.url
    if isinstance(target, str):
        info = target.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(info, autocommit=True) as conn:
            conn.execute("UPDATE decisions SET at = (substr(request_id, 7) || 'T12:00:00Z')"
                         "::timestamptz WHERE request_id LIKE 'batch-%'")
        return
    lines = []
    for line in target.read_text().splitlines():
        rec = json.loads(line)
        rec["at"] = f"{rec['request_id'][6:]}T12:00:00+00:00"
        lines.append(json.dumps(rec))
    target.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("shift", "backend"), [(True, "jsonl"), (False, "jsonl"),
                                                (True, "postgres")])
def test_performance_task(airflow_db, trained, tmp_path, monkeypatch, request, shift, backend):
    settings = _setup(trained, tmp_path, monkeypatch)
    if backend == "postgres":
        url = pg.url_for(request.getfixturevalue("schema"))
        monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", url)  # outcomes: the same database
        monkeypatch.delenv("CREDIT_RISK_OUTCOMES", raising=False)
        settings = settings.model_copy(update={"decision_log": url})
        assert main(["decisions", "migrate"]) == 0
    decided = log_matured_batch(settings, tmp_path, shift)
    with decision_log_at(settings.decisions.url) as dlog:
        assert dlog.count() == decided and dlog.count(since=datetime.now(UTC)
                                                      - pd.DateOffset(months=12)) == 0
    before = _drift_events()
    dr, states = _run()
    assert dr.state == "success", states
    assert states["performance_report"] == "success"
    assert states["emit_performance_alert"] == ("success" if shift else "skipped")
    assert states["emit_drift"] == "skipped"  # no recent traffic: the drift check is quiet
    assert states["prune_decisions"] == "success"
    assert _drift_events() == before + (1 if shift else 0)
    out = monitoring_dir(Settings(), dr.run_id)
    report = json.loads((out / "performance.json").read_text())
    assert report["status"] == "ok" and report["alert"] is shift
    (version,) = report["versions"]
    assert version["n"] == report["matured_with_outcome"] == decided
    assert report["matured_without_outcome"] == 0
    assert [v["vintage"] for v in version["vintages"]] == [months_ago(18), months_ago(17)]
    if shift:
        assert {"roc_auc", "calibration_gap"} <= {a["metric"] for a in report["alerts"]}
    else:
        assert report["alerts"] == []
    assert (out / "performance.png").read_bytes()[:4] == b"\x89PNG"
