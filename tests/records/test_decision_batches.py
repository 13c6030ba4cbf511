"""Issue 22, item 6: a logged `credit-risk predict` run is ONE batch record plus its decisions,
compressed, in both backends (a JSONL side file; a PostgreSQL `decision_batches` row). Readers
(drift, performance, status) see the batch's rows as decisions in their place; retention
deletes them with their record; a damaged or edited batch is skipped with an error naming it
and every other record is still read. The PostgreSQL tests use the server (integration)."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from credit_risk.pipeline.monitoring import recent_traffic
from credit_risk.pipeline.performance import decisions_frame
from credit_risk.records.batches import BatchRows
from credit_risk.records.decisions import DecisionLog, DecisionLogError, JsonlDecisionLog
from tests.records.pg import sql

T0 = datetime(2026, 3, 1, tzinfo=UTC)
RUNS = itertools.count(1)


def _result(pd_: float, version: str = "v1") -> dict:
    return {"probability_of_default": pd_, "risk": "Low", "credit_score": 700, "rating": "Good",
            "reasons": [{"feature": "age", "text": "Age (30 years) raises the risk"}],
            "warnings": [], "model_version": version}


def _batch(dlog: DecisionLog, rows: int, at: datetime, tmp_path, version: str = "v1",
           failed: int = 0):
    """A run of `rows` applications recorded as one batch at `at`; its input file beside."""
    run = f"cli-{next(RUNS)}"
    collected = BatchRows(run, at - timedelta(minutes=1))
    inputs = [{"age": 20 + i % 50, "application_id": f"{run}-{i}"} for i in range(rows)]
    results = [_result(0.01 * (i % 90), version) for i in range(rows)]
    half = rows // 2  # written in two chunks, as predict does
    collected.write(run, inputs[:half], results[:half])
    collected.write(run, inputs[half:], results[half:])
    source = tmp_path / f"in-{run}.csv"
    source.write_text("age\n" * (rows + failed))
    try:
        return dlog.write_batch(collected, collected.finish(at, failed=failed,
                                                            input_path=source))
    finally:
        collected.close()


def _decision(dlog: DecisionLog, rid: str) -> None:
    dlog.write(rid, [{"age": 40, "application_id": rid}], [_result(0.2)])


def _jsonl(tmp_path) -> JsonlDecisionLog:
    return JsonlDecisionLog(tmp_path / "decisions.jsonl")


def test_a_batch_is_one_record_and_a_compressed_file_read_back_as_decisions(tmp_path):
    dlog = _jsonl(tmp_path)
    _decision(dlog, "before")
    batch = _batch(dlog, 1000, datetime.now(UTC), tmp_path, failed=3)
    _decision(dlog, "after")
    lines = dlog.path.read_text().splitlines()
    assert len(lines) == 3  # one line for the whole batch
    record = json.loads(lines[1])["batch"]
    assert record["rows"] == 1000 and record["failed"] == 3 and record["model_version"] == "v1"
    assert record["input_name"].startswith("in-") and len(record["input_sha256"]) == 64
    side = tmp_path / record["file"]
    assert side.parent.name == "decisions.jsonl.batches"
    rows = [json.loads(x) for x in gzip.decompress(side.read_bytes()).splitlines()]
    assert len(rows) == 1000 and "at" not in rows[0] and "model_version" not in rows[0]

    read = dlog.read()
    assert [d["request_id"] for d in read] == ["before", *[batch.request_id] * 1000, "after"]
    one = read[1]
    assert one["at"] == batch.at.isoformat() and one["model_version"] == "v1"
    assert one["inputs"] == {"age": 20, "application_id": f"{batch.request_id}-0"}
    assert one["reasons"][0]["feature"] == "age"  # the whole decision, as the API logs it
    assert dlog.count() == 1002
    chunks = list(dlog.iter_chunks(chunk_rows=300, columns=("inputs", "model_version")))
    assert [len(c) for c in chunks] == [300, 300, 300, 102]
    assert chunks[0][1] == {"inputs": read[1]["inputs"], "model_version": "v1"}
    assert list(dlog.iter_chunks(model_versions={"v2"})) == []


def test_monitoring_reads_a_batch_as_traffic_and_as_decided_applications(tmp_path):
    dlog = _jsonl(tmp_path)
    now = datetime.now(UTC)
    batch = _batch(dlog, 400, now, tmp_path)
    _decision(dlog, "api")
    traffic = recent_traffic(dlog, now - timedelta(days=1), {"v1"}, columns=["age"])
    assert len(traffic) == 401  # drift counts the batch's decisions
    decided = decisions_frame(dlog.read())
    assert len(decided) == 401 and f"{batch.request_id}-399" in set(decided["application_id"])


def test_retention_deletes_a_batch_with_its_file(tmp_path):
    dlog = _jsonl(tmp_path)
    old = _batch(dlog, 50, T0, tmp_path)
    _decision(dlog, "old")  # recorded now
    new = _batch(dlog, 20, datetime.now(UTC) + timedelta(seconds=1), tmp_path)
    orphan = tmp_path / "decisions.jsonl.batches" / "cli-0000-lost.jsonl.gz"
    orphan.write_bytes(b"a run that stopped before its record")
    old_file, new_file = tmp_path / old.file, tmp_path / new.file

    assert dlog.prune(datetime.now(UTC)) == 51  # the old batch's 50 decisions and one more
    assert not old_file.exists() and not orphan.exists() and new_file.exists()
    assert dlog.count() == 20


@pytest.mark.parametrize("damage", ["edited", "truncated", "missing", "outside"])
def test_a_damaged_batch_is_skipped_with_an_error_and_the_rest_is_read(tmp_path, caplog,
                                                                       damage):
    dlog = _jsonl(tmp_path)
    _decision(dlog, "before")
    bad = _batch(dlog, 100, datetime.now(UTC), tmp_path)
    good = _batch(dlog, 10, datetime.now(UTC), tmp_path)
    _decision(dlog, "after")
    side = tmp_path / bad.file
    if damage == "edited":  # a decision changed without its record: still valid gzip
        rows = gzip.decompress(side.read_bytes()).replace(b'"risk":"Low"', b'"risk":"Hi"', 1)
        side.write_bytes(gzip.compress(rows))
    elif damage == "truncated":
        side.write_bytes(side.read_bytes()[:-100])
    elif damage == "missing":
        side.unlink()
    else:  # a record edited to read a file outside the log's folder
        text = dlog.path.read_text().replace(bad.file, "../../etc/passwd")
        dlog.path.write_text(text)

    with caplog.at_level(logging.ERROR, logger="credit_risk.records.decisions"):
        read = dlog.read()
    assert [d["request_id"] for d in read] == ["before", *[good.request_id] * 10, "after"]
    assert bad.request_id in caplog.text and "100 decisions" in caplog.text
    assert {"edited": "do not match their SHA-256", "truncated": "do not match their SHA-256",
            "missing": "No such file", "outside": "refused"}[damage] in caplog.text
    assert dlog.prune(datetime.now(UTC) + timedelta(seconds=5)) == 112  # retention still works


def test_a_batch_whose_record_cannot_be_appended_leaves_no_file(tmp_path, monkeypatch):
    dlog = _jsonl(tmp_path)

    def full(data, fd=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dlog.file, "append", full)
    with pytest.raises(DecisionLogError, match="ENOSPC"):
        _batch(dlog, 10, datetime.now(UTC), tmp_path)
    assert list((tmp_path / "decisions.jsonl.batches").iterdir()) == []
    assert dlog.failing


def test_a_row_that_is_not_a_decision_is_refused_before_anything_is_kept(tmp_path):
    collected = BatchRows("cli-x", datetime.now(UTC))
    with pytest.raises(DecisionLogError, match="not a decision record"):
        collected.write("", [{"age": 1}], [_result(0.1)])  # no run id
    collected.close()


# -- PostgreSQL (integration) ---------------------------------------------------------------

@pytest.fixture
def pg_log(pg_url):
    from credit_risk.records.decisions_pg import PostgresDecisionLog

    dlog = PostgresDecisionLog(pg_url)
    dlog.migrate()
    yield dlog
    dlog.close()


def test_postgres_keeps_a_batch_as_one_row_read_in_its_place(pg_log, schema, tmp_path):
    _decision(pg_log, "before")
    batch = _batch(pg_log, 1000, datetime.now(UTC), tmp_path, failed=2)
    _decision(pg_log, "after")
    assert sql(schema, "SELECT count(*) FROM decisions") == [(2,)]
    [(rows, failed, size, data_size)] = sql(
        schema, "SELECT rows, failed, bytes, length(data) FROM decision_batches")
    assert (rows, failed) == (1000, 2) and size == data_size == batch.bytes

    read = pg_log.read()
    assert [d["request_id"] for d in read] == ["before", *[batch.request_id] * 1000, "after"]
    assert read[1]["inputs"]["application_id"] == f"{batch.request_id}-0"
    assert read[1]["at"] == batch.at.astimezone(UTC).isoformat()
    assert pg_log.count() == 1002
    chunks = list(pg_log.iter_chunks(chunk_rows=400, columns=("inputs", "model_version")))
    assert sum(map(len, chunks)) == 1002 and max(map(len, chunks)) <= 400
    assert len(recent_traffic(pg_log, datetime.now(UTC) - timedelta(days=1), {"v1"},
                              columns=["age"])) == 1002
    assert list(pg_log.iter_chunks(model_versions={"v2"})) == []


def test_postgres_retention_and_a_damaged_batch(pg_log, schema, tmp_path, caplog):
    _batch(pg_log, 30, T0, tmp_path)
    bad = _batch(pg_log, 40, datetime.now(UTC), tmp_path)
    good = _batch(pg_log, 5, datetime.now(UTC), tmp_path)
    _decision(pg_log, "api")
    sql(schema, "UPDATE decision_batches SET data = overlay(data placing '\\x00'::bytea "
                "from 30 for 1) WHERE request_id = %s", (bad.request_id,))
    with caplog.at_level(logging.ERROR, logger="credit_risk.records.decisions_pg"):
        read = pg_log.read(T0 + timedelta(days=1))
    assert [d["request_id"] for d in read] == [good.request_id] * 5 + ["api"]
    assert bad.request_id in caplog.text and "do not match their SHA-256" in caplog.text
    assert pg_log.prune(T0 + timedelta(days=1)) == 30
    assert sql(schema, "SELECT count(*) FROM decision_batches") == [(2,)]


def test_a_schema_not_migrated_to_batches_still_reads_and_prunes(pg_url, schema, tmp_path):
    from credit_risk.records.decisions_pg import PostgresDecisionLog

    with PostgresDecisionLog(pg_url) as dlog:
        dlog.migrate()
        _decision(dlog, "api")
        sql(schema, "DROP TABLE decision_batches")  # as a schema of the release before
        assert [d["request_id"] for d in dlog.read()] == ["api"] and dlog.count() == 1
        assert dlog.prune(datetime.now(UTC) + timedelta(seconds=5)) == 1
        with pytest.raises(DecisionLogError, match="decision_batches"):
            _batch(dlog, 3, datetime.now(UTC), tmp_path)
