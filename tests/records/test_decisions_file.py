"""Issue 9, item 2, the embedded default: the JSONL decision log behind the same interface
(windowed reads in chunks, retention by an atomic rewrite), the settings that choose the
backend, and the monitoring DAG's retention task. No server needed."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from credit_risk.config import Settings
from credit_risk.records.backends import decision_log_at, open_decision_log, prune_decisions
from credit_risk.records.decisions import DecisionLogError, JsonlDecisionLog


def _lines(dlog: JsonlDecisionLog, records: list[tuple[datetime, str, str]]) -> None:
    """Decisions recorded at given times (appended as the backend writes them)."""
    with dlog.path.open("ab") as fh:
        for at, rid, version in records:
            fh.write(json.dumps({"at": at.isoformat(), "request_id": rid,
                                 "inputs": {"rid": rid}, "model_version": version}).encode()
                     + b"\n")


def test_a_path_opens_the_file_backend(tmp_path):
    dlog = decision_log_at(tmp_path / "d.jsonl")
    assert type(dlog) is JsonlDecisionLog and dlog.describe() == str(tmp_path / "d.jsonl")
    settings = Settings(decision_log=tmp_path / "x.jsonl")
    assert type(open_decision_log(settings)) is JsonlDecisionLog
    assert open_decision_log(settings.model_copy(update={"decision_log": None})) is None


def test_settings_choose_the_backend(monkeypatch, tmp_path):
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", "postgresql://u@db.internal/credit")
    assert Settings().decisions.url == "postgresql+psycopg://u@db.internal/credit"
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(tmp_path / "d.jsonl"))
    assert Settings().decisions.url == tmp_path / "d.jsonl"
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", "mysql://u@db/credit")
    with pytest.raises(ValidationError, match="postgresql"):
        Settings()
    monkeypatch.delenv("CREDIT_RISK_DECISION_LOG")
    monkeypatch.setenv("CREDIT_RISK_DECISION_RETENTION_DAYS", "")
    assert Settings().decisions.retention_days is None
    monkeypatch.setenv("CREDIT_RISK_DECISION_RETENTION_DAYS", "400")
    assert Settings().decisions.retention_days == 400
    monkeypatch.setenv("CREDIT_RISK_DECISION_RETENTION_DAYS", "3")  # < the 7-day drift window
    with pytest.raises(ValidationError, match="drift_window_days"):
        Settings()
    with pytest.raises(DecisionLogError, match="only postgresql"):
        decision_log_at("mysql://u@db/credit")


@pytest.mark.parametrize("chunk_rows", [1, 4, 1000])
def test_windowed_reads_stream_the_file_in_chunks(tmp_path, chunk_rows):
    dlog = JsonlDecisionLog(tmp_path / "d.jsonl")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    _lines(dlog, [(t0 + timedelta(hours=h), f"h{h}", "v1" if h % 3 else "v0")
                  for h in range(48)])
    with dlog.path.open("ab") as fh:
        fh.write(b'{"at": "2026-03-01T05:00:00+00:00", "torn\n')  # skipped, not a crash
    chunks = list(dlog.iter_chunks(t0 + timedelta(hours=10), t0 + timedelta(hours=20),
                                   chunk_rows=chunk_rows))
    assert all(len(c) <= chunk_rows for c in chunks)
    assert [r["request_id"] for c in chunks for r in c] == [f"h{h}" for h in range(10, 20)]
    v0 = [r["request_id"] for c in dlog.iter_chunks(model_versions={"v0"},
                                                    chunk_rows=chunk_rows) for r in c]
    assert v0 == [f"h{h}" for h in range(0, 48, 3)]
    naive = [r for c in dlog.iter_chunks(datetime(2026, 3, 2, 23)) for r in c]
    assert [r["request_id"] for r in naive] == ["h47"]  # naive times are UTC
    assert dlog.count(until=t0 + timedelta(hours=5)) == 5


def test_reads_of_some_columns_cut_each_record_to_those(tmp_path):
    """The same `columns=` as the database backend: the keys asked for, in that order (None
    for one a record lacks), with the same window, version filter, order and chunks."""
    dlog = JsonlDecisionLog(tmp_path / "d.jsonl")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    _lines(dlog, [(t0 + timedelta(hours=h), f"h{h}", "v1" if h % 3 else "v0")
                  for h in range(12)])
    dlog.write("w", [{"rid": "w"}], [{"model_version": "v1", "rating": "Good"}])
    full = [r for c in dlog.iter_chunks(t0 + timedelta(hours=2), model_versions={"v1"})
            for r in c]
    chunks = list(dlog.iter_chunks(t0 + timedelta(hours=2), model_versions={"v1"},
                                   chunk_rows=3, columns=("model_version", "inputs", "rating")))
    assert [len(c) for c in chunks] == [3, 3, 2]
    rows = [r for c in chunks for r in c]
    assert rows == [{"model_version": r["model_version"], "inputs": r["inputs"],
                     "rating": r.get("rating")} for r in full]
    assert [list(r) for r in rows[:1]] == [["model_version", "inputs", "rating"]]
    assert rows[-1]["rating"] == "Good" and rows[0]["rating"] is None
    assert [r["inputs"]["rid"] for r in rows] == ["h2", "h4", "h5", "h7", "h8", "h10", "h11",
                                                "w"]
    with pytest.raises(TypeError, match="not a string"):
        next(dlog.iter_chunks(columns="inputs"))


def test_monitoring_reads_the_file_window_in_chunks(tmp_path):
    from credit_risk.pipeline.monitoring import recent_traffic

    now = datetime.now(UTC)
    dlog = JsonlDecisionLog(tmp_path / "d.jsonl")
    _lines(dlog, [(now - timedelta(days=30), "old", "v1"), (now - timedelta(days=1), "a", "v1"),
                  (now - timedelta(hours=1), "b", "v1"), (now - timedelta(hours=1), "c", "x")])
    frame = recent_traffic(tmp_path / "d.jsonl", now - timedelta(days=7), {"v1"},
                           columns=["rid"], chunk_rows=1)
    assert frame["rid"].tolist() == ["a", "b"]
    assert recent_traffic(dlog, now, {"v1"}, columns=["rid"]).empty


def test_retention_rewrites_the_file_atomically(tmp_path, monkeypatch, capsys):
    now = datetime.now(UTC)
    path = tmp_path / "d.jsonl"
    dlog = JsonlDecisionLog(path)
    _lines(dlog, [(now - timedelta(days=d), f"age{d}", "v1") for d in (90, 31, 29, 2)])
    with path.open("ab") as fh:
        fh.write(b"not json\n")  # cannot be dated: kept
    os.chmod(path, 0o640)
    inode = path.stat().st_ino
    summary = prune_decisions(Settings(decision_log=path, decision_retention_days=30), now=now)
    assert summary["deleted"] == 2 and summary["status"] == "pruned"
    assert [r["request_id"] for r in dlog.read()] == ["age29", "age2"]
    assert path.read_bytes().endswith(b"not json\n") and path.stat().st_ino != inode
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]  # no temporary file left
    assert prune_decisions(Settings(decision_log=path), now=now)["deleted"] == 0  # no setting

    from credit_risk.cli import main

    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(path))
    assert main(["decisions", "prune", "--days", "7"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 1
    assert [r["request_id"] for r in dlog.read()] == ["age2"]
    assert main(["decisions", "prune", "--days", "1"]) == 1  # shorter than the drift window
    assert main(["decisions", "migrate"]) == 0
    assert "no schema" in capsys.readouterr().out


def test_writers_lose_nothing_while_the_file_is_pruned(tmp_path):
    """Writers (each its own file descriptor and lock, like worker processes) append while
    the log is pruned again and again: every acknowledged line is in the final file, whole."""
    path = tmp_path / "d.jsonl"
    old = datetime.now(UTC) - timedelta(days=400)
    _lines(JsonlDecisionLog(path), [(old, f"old{i}", "v1") for i in range(200)])
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer(k):
        dlog = JsonlDecisionLog(path)  # its own instance: only the file lock is shared
        i = 0
        while not stop.is_set():
            dlog.write(f"w{k}-{i}", [{"i": i}], [{"model_version": "v1"}])
            acknowledged.append(f"w{k}-{i}")
            i += 1

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    pruner = JsonlDecisionLog(path)
    deleted = 0
    for _ in range(30):
        deleted += pruner.prune(datetime.now(UTC) - timedelta(days=1))
    stop.set()
    for t in threads:
        t.join()
    data = path.read_bytes()
    assert data.endswith(b"\n")
    ids = [json.loads(line)["request_id"] for line in data.splitlines()]  # all lines parse
    assert deleted == 200 and sorted(ids) == sorted(acknowledged) and len(acknowledged) > 50


def test_the_monitoring_dag_enforces_retention():
    from tests.dags.bundle import dag_bag

    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["credit_risk_monitoring"]
    task = dag.task_dict["prune_decisions"]
    assert task.trigger_rule == "all_done"
    assert task.upstream_task_ids == {"drift_report", "performance_report"}
