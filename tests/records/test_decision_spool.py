"""The write-ahead spool of the PostgreSQL decision log (credit_risk.records.decisions_spool):
durable before the answer, shipped once by decision id, answered while the database is down,
503 when the spool itself cannot write."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from credit_risk.records.backends import decision_log_at
from credit_risk.records.decisions import DecisionLogError
from credit_risk.records.decisions_pg import PostgresDecisionLog
from credit_risk.records.decisions_spool import SpooledDecisionLog
from credit_risk.records.spool import SpoolWriter
from serving import create_app
from tests.records.cluster import Cluster
from tests.records.pg import sql

pytestmark = [pytest.mark.integration]

RESULT = {"probability_of_default": 0.1, "model_version": "v1", "credit_score": 700,
          "rating": "A", "risk": "Low", "reasons": ["utilisation"]}


def spooled(url: str, folder: Path) -> SpooledDecisionLog:
    target = decision_log_at(url, commit_timeout_s=1.0)
    assert isinstance(target, PostgresDecisionLog)
    return SpooledDecisionLog(target, folder, ship_interval_s=0.05)


def per_request(schema: str) -> dict[str, int]:
    return dict(sql(schema, "SELECT request_id, count(*) FROM decisions GROUP BY request_id"))


def test_threads_share_fsyncs_and_every_decision_is_shipped_once(pg_url, schema, tmp_path):
    decision_log_at(pg_url).migrate()
    dlog = spooled(pg_url, tmp_path / "spool")

    def client(k: int) -> None:
        for n in range(50):
            dlog.write(f"r{k}-{n}", [{"a": k}, {"a": n}], [RESULT, RESULT])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dlog.writer.syncs < 400  # 400 calls: fewer fdatasyncs, shared by waiting threads
    assert dlog.flush()
    assert per_request(schema) == {f"r{k}-{n}": 2 for k in range(8) for n in range(50)}
    dlog.close()


def test_a_batch_shipped_again_is_stored_once(pg_url, schema, tmp_path):
    decision_log_at(pg_url).migrate()
    folder = tmp_path / "spool"
    dlog = spooled(pg_url, folder)
    for n in range(20):
        dlog.write(f"r{n}", [{}], [RESULT])
    assert dlog.flush()
    dlog.shipper.stop(5)
    dlog.writer.close()  # as if killed after the commit, before noting what it shipped
    for note in folder.glob("*.shipped"):
        note.unlink()
    again = spooled(pg_url, folder)
    assert again.flush()
    assert per_request(schema) == {f"r{n}": 1 for n in range(20)}
    assert not list(folder.glob("segment-*"))  # the orphan, shipped, is gone
    again.close()


def test_a_dead_writers_segment_is_adopted_without_its_unfinished_line(pg_url, schema, tmp_path):
    decision_log_at(pg_url).migrate()
    folder = tmp_path / "spool"
    writer = SpoolWriter(folder)
    dead = spooled(pg_url, tmp_path / "elsewhere")  # only to make lines as the log makes them
    dead.writer = writer
    dead.shipper.stop(5)
    for n in range(5):
        dead.write(f"d{n}", [{}], [RESULT])
    segment = writer.current
    assert segment is not None
    os.write(segment.fd, b'{"decision_id": "x", "at": "2026-')  # killed in mid-write
    live = spooled(pg_url, folder)
    live.shipper.ship_once()
    assert per_request(schema) == {}  # its writer still holds it: not an orphan
    writer.close()  # the kernel drops a killed process's lock
    assert live.flush()
    assert per_request(schema) == {f"d{n}": 1 for n in range(5)}
    assert not segment.path.exists()
    live.close()
    dead.close()


def test_decisions_are_answered_while_the_database_is_down_and_shipped_after(
        cluster: Cluster, tmp_path):
    url = cluster.url("app")
    decision_log_at(url).migrate()
    dlog = spooled(url, tmp_path / "spool")
    dlog.write("before", [{}], [RESULT])
    assert dlog.flush()
    cluster.stop("immediate")
    for n in range(30):
        dlog.write(f"down{n}", [{}], [RESULT])  # answered: durable in the spool
    assert dlog.ok() and dlog.pending_bytes() > 0
    assert dlog.shipper.ship_once() is None and dlog.target.failing
    status = dlog.status()  # what /ready shows: answered, but not in the database yet
    assert status["unshipped_bytes"] > 0 and "OperationalError" in status["shipping_error"]
    cluster.start()
    assert dlog.flush(timeout_s=30)
    assert dlog.status() == {"unshipped_bytes": 0, "shipping_error": None}
    rows = dict(cluster.sql("SELECT request_id, count(*) FROM decisions GROUP BY request_id"))
    assert rows == {"before": 1, **{f"down{n}": 1 for n in range(30)}}
    dlog.close()


def test_a_spool_that_cannot_write_answers_503_with_retry_after(trained, pg_url, tmp_path):
    decision_log_at(pg_url).migrate()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the spool folder would be inside a file: nothing can be written
    settings = trained[0].model_copy(update={"decision_log": pg_url,
                                             "decision_log_spool": blocker / "spool"})
    app = create_app(settings, watch=False)
    client = app.test_client()
    application = {f["name"]: f["default"] for f in client.get("/api/v1/model").json["inputs"]}
    r = client.post("/api/v1/predict", json=application)
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    ready = client.get("/ready")
    assert ready.status_code == 503 and "ENOTDIR" in ready.json["decision_log"]["last_error"]
    blocker.unlink()  # writable again: ready, and answered
    app.extensions["credit_risk"]["decisions"].probe_interval_s = 0
    assert client.get("/ready").status_code == 200
    r = client.post("/api/v1/predict", json=application)
    assert r.status_code == 200
    dlog = app.extensions["credit_risk"]["decisions"]
    assert dlog.flush()
    assert dlog.count() == 1
    dlog.close()


def test_a_decision_the_database_cannot_store_is_refused_before_the_answer(pg_url, tmp_path):
    dlog = spooled(pg_url, tmp_path / "spool")
    with pytest.raises(DecisionLogError, match="NUL"):
        dlog.write("r", [{"name": "a\x00b"}], [RESULT])
    dlog.close()


def test_the_unshipped_backlog_is_a_metric(trained, pg_url, tmp_path):
    """What the spool holds for the database shows in /metrics, and drops to 0 once shipped."""
    decision_log_at(pg_url).migrate()
    settings = trained[0].model_copy(update={"decision_log": pg_url,
                                             "decision_log_spool": tmp_path / "spool"})
    app = create_app(settings, watch=False)
    client = app.test_client()
    dlog = app.extensions["credit_risk"]["decisions"]
    dlog.shipper.stop(5)  # nothing shipped until the test asks

    def unshipped() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = next(x for x in text.splitlines()
                    if x.startswith("credit_risk_decision_log_unshipped_bytes"))
        return float(line.split()[-1])

    application = {f["name"]: f["default"] for f in client.get("/api/v1/model").json["inputs"]}
    assert client.post("/api/v1/predict", json=application).status_code == 200
    assert unshipped() == dlog.pending_bytes() > 0
    assert dlog.flush()
    assert unshipped() == 0
    dlog.close()
