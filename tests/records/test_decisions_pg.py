"""The decision log in PostgreSQL, against the real server on this machine (see
`tests/records/pg.py`): schema, group commit, bounds, reads, retention, serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from credit_risk.config import Settings
from credit_risk.records.backends import decision_log_at, prune_decisions
from credit_risk.records.decisions import DecisionLogError
from credit_risk.records.decisions_pg import PostgresDecisionLog
from tests.records.pg import CONNINFO, sql, url_for


@pytest.fixture
def pg_log(pg_url):
    dlog = PostgresDecisionLog(pg_url, commit_timeout_s=2.0)
    dlog.migrate()
    yield dlog
    dlog.close()


def result(i: int = 0, version: str = "v1") -> dict:
    return {"probability_of_default": 0.01 * (i % 100), "risk": "Low", "credit_score": 700 + i,
            "rating": "Good", "reasons": ["credit utilisation"], "model_version": version,
            "warnings": []}


# -- schema --------------------------------------------------------------------------------


def test_migrations_build_the_schema_from_nothing(pg_url, schema):
    dlog = decision_log_at(pg_url)  # the backend the URL names
    assert isinstance(dlog, PostgresDecisionLog)
    try:
        assert dlog.revision() is None
        assert not dlog.ok() and "credit-risk decisions migrate" in dlog.last_error
        with pytest.raises(DecisionLogError, match="decisions"):  # no table: nothing recorded
            dlog.write("r", [{"a": 1}], [result()])
        heads = []
        threads = [threading.Thread(target=lambda: heads.append(dlog.migrate()))
                   for _ in range(3)]  # concurrent starts: the advisory lock serialises them
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert heads == [dlog.head_revision()] * 3 and dlog.revision() == dlog.head_revision()
        assert dlog.ok(min_interval_s=0)
        indexes = {name: definition for name, definition in sql(
            schema, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s",
            (schema,))}
        assert "(at, id)" in indexes["ix_decisions_at_id"]
        assert "(model_version, at)" in indexes["ix_decisions_model_version_at"]
        assert "(request_id)" in indexes["ix_decisions_request_id"]
        types = dict(sql(schema, "SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_schema = %s AND table_name = 'decisions'",
                         (schema,)))
        assert types["inputs"] == types["result"] == "jsonb"
        assert types["at"] == "timestamp with time zone"
        assert dlog.migrate() == dlog.head_revision()  # again: nothing to do
    finally:
        dlog.close()


def test_migrate_command_and_status(pg_url, monkeypatch, capsys):
    from credit_risk.cli import main

    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", pg_url)
    assert main(["decisions", "status"]) == 1
    assert '"ok": false' in capsys.readouterr().out
    assert main(["decisions", "migrate"]) == 0
    assert f"schema at {PostgresDecisionLog.head_revision()}" in capsys.readouterr().out
    assert main(["decisions", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["ok"] and status["decisions"] == 0 and "options=" in status["log"]


# -- writes --------------------------------------------------------------------------------


def test_round_trip(pg_log, schema):
    inputs = [{"income": 1_200_000, "loan_purpose": "Home", "note": "ü ☃"},
              {"income": None, "loan_purpose": "Auto"}]
    before = datetime.now(UTC)
    pg_log.write("req-1", inputs, [result(1), result(2, "v2")])
    after = datetime.now(UTC)
    rows = pg_log.read()
    assert [(r["request_id"], r["inputs"], r["model_version"]) for r in rows] == [
        ("req-1", inputs[0], "v1"), ("req-1", inputs[1], "v2")]
    assert {k: v for k, v in rows[0].items() if k not in ("at", "request_id", "inputs")} \
        == result(1)
    at = datetime.fromisoformat(rows[0]["at"])
    assert before <= at <= after and at.utcoffset() == timedelta(0)
    columns = sql(schema, "SELECT request_id, model_version, probability_of_default, "
                          "credit_score, rating, risk FROM decisions ORDER BY id")
    assert columns == [("req-1", "v1", 0.01, 701, "Good", "Low"),
                       ("req-1", "v2", 0.02, 702, "Good", "Low")]


def test_a_write_refused_for_its_data_fails_alone(pg_log, schema):
    """JSONB cannot hold NUL: that request is refused (DecisionLogError), others in the same
    group are committed, and the log stays ready (the database is fine)."""
    lock = psycopg.connect(CONNINFO, options=f"-csearch_path={schema}")
    lock.execute("LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE")  # let a group form
    errors: dict[str, Exception | None] = {}

    def write(rid, value):
        try:
            pg_log.write(rid, [{"name": value}], [result()])
            errors[rid] = None
        except DecisionLogError as exc:
            errors[rid] = exc

    first = threading.Thread(target=write, args=("first", "a"))  # taken, waits on the lock
    first.start()
    time.sleep(0.2)
    threads = [threading.Thread(target=write, args=(rid, v))
               for rid, v in (("good", "b"), ("bad", "x\x00y"), ("good2", "c"))]
    for t in threads:
        t.start()
    time.sleep(0.2)
    lock.rollback()
    lock.close()
    for t in [first, *threads]:
        t.join()
    assert errors["first"] is None and errors["good"] is None and errors["good2"] is None
    assert "Unicode" in str(errors["bad"])
    assert sorted(r for (r,) in sql(schema, "SELECT request_id FROM decisions")) == [
        "first", "good", "good2"]
    assert pg_log.ok() and not pg_log.failing


def test_group_commit_under_concurrent_threads(pg_log, schema):
    """16 threads x 40 writes: every acknowledged write is in the table, and writes that
    arrive while a commit runs share the next one (fewer transactions than writes)."""
    acknowledged: list[str] = []

    def worker(k):
        for i in range(40):
            rid = f"t{k}-{i}"
            pg_log.write(rid, [{"k": k, "i": i}, {"k": k, "i": -i}], [result(i), result(i)])
            acknowledged.append(rid)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = sql(schema, "SELECT request_id, count(*) FROM decisions GROUP BY request_id")
    assert dict(stored) == {rid: 2 for rid in acknowledged} and len(acknowledged) == 640
    commits = pg_log.writer.commits
    assert pg_log.writer.committed_rows == 1280 and commits < 640, commits


def test_a_group_waits_for_one_commit_and_is_released_together(pg_log, schema):
    lock = psycopg.connect(CONNINFO, options=f"-csearch_path={schema}")
    lock.execute("LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE")
    done: list[float] = []
    threads = [threading.Thread(target=lambda i=i: (pg_log.write(f"g{i}", [{}], [result()]),
                                                    done.append(time.monotonic())))
               for i in range(10)]
    threads[0].start()
    time.sleep(0.3)  # the writer has taken it: its insert waits for the lock
    for t in threads[1:]:
        t.start()
    time.sleep(0.5)
    assert done == []  # all wait
    released = time.monotonic()
    lock.rollback()
    lock.close()
    for t in threads:
        t.join()
    assert len(done) == 10 and all(t >= released for t in done)  # none before its commit
    assert sql(schema, "SELECT count(*) FROM decisions") == [(10,)]
    # the first write alone, the nine that queued behind it in one
    assert (pg_log.writer.commits, pg_log.writer.committed_rows) == (2, 10)


def test_commit_bound_and_queue_bound(pg_url, schema):
    """A commit that does not finish in time, or a full queue: DecisionLogError, and the
    decision is not in the table afterwards (the server cancelled the stuck statement)."""
    dlog = PostgresDecisionLog(pg_url, commit_timeout_s=0.5, queue_rows=5)
    dlog.migrate()
    lock = psycopg.connect(CONNINFO, options=f"-csearch_path={schema}")
    try:
        lock.execute("LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE")
        outcome: dict[str, str] = {}

        def write(rid, n):
            try:
                dlog.write(rid, [{}] * n, [result()] * n)
                outcome[rid] = "ok"
            except DecisionLogError as exc:
                outcome[rid] = str(exc)

        stuck = threading.Thread(target=write, args=("stuck", 1))  # the writer takes it
        stuck.start()
        time.sleep(0.1)
        queued = threading.Thread(target=write, args=("queued", 4))  # waits in the queue
        queued.start()
        time.sleep(0.1)
        with pytest.raises(DecisionLogError, match="already wait"):
            dlog.write("refused", [{}] * 2, [result()] * 2)  # 4 + 2 > 5: refused at once
        stuck.join()
        queued.join()
        for rid in ("stuck", "queued"):
            assert "not committed within 0.5 s" in outcome[rid]
        assert not dlog.ok(min_interval_s=60) and dlog.failures >= 3
        lock.rollback()
        time.sleep(0.6)  # the cancelled statement has ended
        assert sql(schema, "SELECT count(*) FROM decisions") == [(0,)]
        dlog.write("after", [{}], [result()])  # recovers by itself
        assert dlog.ok() and [r["request_id"] for r in dlog.read()] == ["after"]
    finally:
        lock.close()
        dlog.close()


def test_nothing_is_acknowledged_when_the_database_is_unreachable(schema):
    dlog = PostgresDecisionLog(url_for(schema, port=1), commit_timeout_s=3.0)
    try:
        with pytest.raises(DecisionLogError, match="OperationalError"):
            dlog.write("r", [{"a": 1}], [result()])
        assert dlog.failing and dlog.failures == 1 and not dlog.ok(min_interval_s=0)
        assert "OperationalError" in dlog.last_error
    finally:
        dlog.close()


def test_terminated_connections_never_lose_an_acknowledged_decision(pg_log, schema):
    """Writers run while the writer's server process is killed again and again
    (pg_terminate_backend): each write is acknowledged and in the table, or refused."""
    acknowledged, refused = [], []
    stop = threading.Event()

    def writer(k):
        i = 0
        while not stop.is_set():
            rid = f"w{k}-{i}"
            try:
                pg_log.write(rid, [{"i": i}], [result(i)])
                acknowledged.append(rid)
            except DecisionLogError:
                refused.append(rid)
            i += 1

    kills = 0
    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    try:
        with psycopg.connect(CONNINFO, autocommit=True) as admin:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                kills += admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (schema,)).fetchone()[0]
                time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join()
    stored = {r for (r,) in sql(schema, "SELECT request_id FROM decisions")}
    assert kills >= 20 and len(acknowledged) > 100
    assert set(acknowledged) <= stored  # never acknowledged without the record
    assert not set(refused) & set(acknowledged)
    pg_log.write("after", [{}], [result()])
    assert pg_log.ok()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_sending(pg_log, schema):
    """A restarted server or a killed session closes the idle connection: the next write
    notices before sending (nothing can be half done then) and commits on a new one."""
    pg_log.write("before", [{}], [result()])
    with psycopg.connect(CONNINFO, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()", (schema,)).fetchone()[0]
    assert killed >= 1
    time.sleep(0.3)  # the termination notice has reached the idle socket
    pg_log.write("single", [{}], [result()])  # one row: the prepared INSERT
    pg_log.write("group", [{}, {}], [result(), result()])  # several: one COPY
    assert pg_log.failures == 0 and not pg_log.failing
    assert sorted(sql(schema, "SELECT request_id, count(*) FROM decisions GROUP BY 1")) == [
        ("before", 1), ("group", 2), ("single", 1)]


# -- reads and retention -------------------------------------------------------------------


def test_windowed_reads_in_chunks(pg_log, schema):
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    for day in range(30):
        pg_log.write(f"d{day}", [{"day": day}, {"day": day}],
                     [result(day, "v1"), result(day, "v2" if day % 2 else "v1")])
        sql(schema, "UPDATE decisions SET at = %s WHERE request_id = %s",
            (t0 + timedelta(days=day, hours=1), f"d{day}"))
    chunks = list(pg_log.iter_chunks(t0 + timedelta(days=10), t0 + timedelta(days=20),
                                     chunk_rows=7))
    assert [len(c) for c in chunks] == [7, 7, 6]
    rows = [r for c in chunks for r in c]
    assert [r["inputs"]["day"] for r in rows] == [d for d in range(10, 20) for _ in (0, 1)]
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    v2 = [r for c in pg_log.iter_chunks(t0, model_versions={"v2"}, chunk_rows=4) for r in c]
    assert len(v2) == 15 and {r["model_version"] for r in v2} == {"v2"}
    assert list(pg_log.iter_chunks(model_versions=set())) == []
    assert pg_log.count(t0 + timedelta(days=25)) == 10
    plan = "\n".join(r[0] for r in sql(
        schema, "EXPLAIN SELECT id, at FROM decisions WHERE at >= now() - interval '7 days' "
                "ORDER BY at, id LIMIT 7"))
    assert "ix_decisions_at_id" in plan or "Seq Scan" in plan  # tiny table: either is fine


def test_monitoring_reads_traffic_from_the_database(pg_log, schema):
    from credit_risk.pipeline.monitoring import recent_traffic

    now = datetime.now(UTC)
    pg_log.write("old", [{"x": 1.0, "c": "a"}], [result(0, "v1")])
    sql(schema, "UPDATE decisions SET at = %s", (now - timedelta(days=30),))
    pg_log.write("new", [{"x": None, "c": "a"}] * 3 + [{"x": 2.5, "c": "b", "extra": 1}],
                 [result(0, "v1")] * 3 + [result(0, "v1")])
    pg_log.write("other", [{"x": 9.0, "c": "z"}], [result(0, "other-dataset")])
    frame = recent_traffic(pg_log, now - timedelta(days=7), {"v1"}, columns=["x", "c"],
                           chunk_rows=3)
    assert list(frame.columns) == ["x", "c"] and len(frame) == 4
    assert str(frame["x"].dtype) == "float64" and frame["x"].isna().sum() == 3
    assert sorted(frame["c"]) == ["a", "a", "a", "b"]


def test_reads_of_some_columns_select_and_decode_only_those(pg_url, schema, monkeypatch):
    """Issue 11: drift reads `inputs` and `model_version` only; `result` (most of a record:
    the reasons) is neither fetched nor decoded; JSONB goes through `postgres.loads` (orjson)."""
    from credit_risk.records import postgres

    decoded: list = []
    real = postgres.loads
    monkeypatch.setattr(postgres, "loads", lambda data: decoded.append(real(data))
                        or decoded[-1])
    dlog = PostgresDecisionLog(pg_url)  # its engine is made after the patch: decodes with it
    dlog.migrate()
    try:
        t0 = datetime(2026, 3, 1, tzinfo=UTC)
        for day in range(12):
            dlog.write(f"d{day}", [{"day": day, "c": "x"}], [result(day, f"v{day % 3}")])
            sql(schema, "UPDATE decisions SET at = %s WHERE request_id = %s",
                (t0 + timedelta(days=day), f"d{day}"))
        since, until = t0 + timedelta(days=2), t0 + timedelta(days=10)
        full = dlog.read(since, until)
        assert len(full) == 8 and any(isinstance(d, dict) and "reasons" in d for d in decoded)
        decoded.clear()
        chunks = list(dlog.iter_chunks(since, until, chunk_rows=3,
                                       columns=("inputs", "model_version")))
        assert [len(c) for c in chunks] == [3, 3, 2]
        rows = [r for c in chunks for r in c]
        assert rows == [{"inputs": r["inputs"], "model_version": r["model_version"]}
                        for r in full]
        assert decoded == [r["inputs"] for r in full]  # only the inputs were decoded
        some = [r for c in dlog.iter_chunks(since, until, model_versions={"v1"},
                                            columns=("rating", "at", "reasons", "nothing"))
                for r in c]
        assert some == [{"rating": "Good", "at": r["at"], "reasons": ["credit utilisation"],
                         "nothing": None} for r in full if r["model_version"] == "v1"]
        assert [list(r) for r in some[:1]] == [["rating", "at", "reasons", "nothing"]]
        odd = ("50%s", "a'b", "x%")  # keys are bound: no quoting or placeholder trouble
        assert {tuple(r.values()) for c in dlog.iter_chunks(since, until, columns=odd)
                for r in c} == {(None, None, None)}
        assert list(dlog.iter_chunks(since, until, model_versions=set(),
                                     columns=("inputs",))) == []
        with pytest.raises(TypeError, match="not a string"):
            next(dlog.iter_chunks(columns="inputs"))
    finally:
        dlog.close()


def test_values_orjson_refuses_are_read_with_the_json_module(pg_log, schema):
    sql(schema, "INSERT INTO decisions (at, request_id, model_version, inputs, result) "
                "VALUES (now(), 'big', 'v1', '{\"n\": 1180591620717411303424}', '{}')")
    [[row]] = list(pg_log.iter_chunks(columns=("inputs",)))
    assert row == {"inputs": {"n": 2 ** 70}}


def test_a_window_is_read_through_one_server_side_cursor(pg_log, schema):
    """Bounded memory: the rows come a chunk per FETCH from a cursor declared on the server
    (the session waits idle in its transaction between chunks), and closing the iterator
    early ends that transaction."""
    pg_log.write("many", [{"i": i} for i in range(25)], [result(i) for i in range(25)])

    def reader() -> list[tuple]:
        return sql(schema, "SELECT state, query FROM pg_stat_activity WHERE application_name "
                           "= %s AND pid <> pg_backend_pid() AND query LIKE '%%decisions%%'",
                   (schema,))

    chunks = pg_log.iter_chunks(chunk_rows=10, columns=("inputs",))
    first = next(chunks)
    assert [r["inputs"]["i"] for r in first] == list(range(10))
    [(_, query)] = [r for r in reader() if r[0] == "idle in transaction"]
    assert query.upper().startswith("FETCH FORWARD 10 FROM")  # the next chunk, when asked
    assert [r["inputs"]["i"] for r in next(chunks)] == list(range(10, 20))
    chunks.close()
    assert [r for r in reader() if r[0] == "idle in transaction"] == []


def test_drift_step_finds_the_same_from_the_database_as_from_a_file(trained, pg_url, tmp_path):
    """The same traffic logged to both backends: the drift report (PSI of every row, the
    seeded Evidently sample, its result) is the same, other datasets' decisions left out."""
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline.ingest import assemble
    from credit_risk.pipeline.monitoring import drift_step
    from credit_risk.pipeline.steps import load_scorer
    from credit_risk.spec.dataset import load_spec

    settings = trained[0]
    scorer = load_scorer(settings)
    names = [f["name"] for f in scorer.fields]
    apps = assemble(load_spec("lauki_synthetic"), synthetic.generate(400, seed=5, shift=True))
    records = apps[names].astype(object).where(apps[names].notna(), None).to_dict("records")
    results = scorer.score_records(records)
    other = [{**r, "model_version": "other-dataset"} for r in results[:50]]
    targets = {"jsonl": str(tmp_path / "d.jsonl"), "postgresql": pg_url}
    for target in targets.values():
        with decision_log_at(target) as dlog:
            dlog.migrate()
            dlog.write("a", records[:200], results[:200])
            dlog.write("other", records[:50], other)
            dlog.write("b", records[200:], results[200:])
    out = {name: json.loads(Path(drift_step(settings.model_copy(update={
        "decision_log": target, "runs_dir": tmp_path / name}), name, evidently_rows=150))
        .read_text()) for name, target in targets.items()}
    pg, jsonl = out["postgresql"], out["jsonl"]
    assert pg["status"] == "ok" and pg["psi_rows"] == 400 and pg["evidently_sample_rows"] == 150
    assert pg["drift"] and "credit_utilization_ratio" in pg["drifted_fields"]
    for key in ("psi", "drifted_fields", "evidently", "current_rows"):
        assert pg[key] == jsonl[key], key


def test_retention_deletes_old_decisions_only(pg_url, pg_log, schema, monkeypatch, capsys):
    now = datetime.now(UTC)
    for age in (100, 40, 31, 29, 1):
        pg_log.write(f"age{age}", [{}], [result()])
        sql(schema, "UPDATE decisions SET at = %s WHERE request_id = %s",
            (now - timedelta(days=age), f"age{age}"))
    settings = Settings(decision_log=pg_url, decision_retention_days=30)
    summary = prune_decisions(settings, now=now)
    assert summary["deleted"] == 3 and summary["status"] == "pruned"
    assert sorted(r for (r,) in sql(schema, "SELECT request_id FROM decisions")) == [
        "age1", "age29"]
    from credit_risk.cli import main

    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", pg_url)
    assert main(["decisions", "prune", "--days", "7"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 1
    assert [r for (r,) in sql(schema, "SELECT request_id FROM decisions")] == ["age1"]


def test_pruning_in_batches(pg_log, schema, monkeypatch):
    from credit_risk.records import decisions_pg

    monkeypatch.setattr(decisions_pg, "PRUNE_BATCH", 7)
    pg_log.write("many", [{}] * 30, [result()] * 30)
    assert pg_log.prune(datetime.now(UTC) + timedelta(seconds=1)) == 30
    assert pg_log.count() == 0


# -- serving -------------------------------------------------------------------------------


def _application(client) -> dict:
    return {f["name"]: f["default"] for f in client.get("/api/v1/model").json["inputs"]}


def test_serving_records_each_decision_in_the_table_before_answering(trained, pg_url, schema):
    from serving import create_app
    from tests.serving.servers import http, in_thread

    settings = trained[0].model_copy(update={"decision_log": pg_url,
                                             "decision_log_migrate_on_start": True})
    app = create_app(settings, watch=False)
    client = app.test_client()
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["decision_log"]["ok"]
    application = _application(client)
    seen_before_answer = []
    with in_thread(app) as base:
        def call(i):
            status, body = http(f"{base}/api/v1/predict", application)
            rid = json.loads(body)["request_id"]
            # The answer is out only after the commit: the row is visible to anyone now.
            seen_before_answer.append((status, sql(
                schema, "SELECT count(*) FROM decisions WHERE request_id = %s", (rid,))[0][0]))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert seen_before_answer == [(200, 1)] * 24
    r = client.post("/api/v1/predict/batch", json={"applications": [application] * 5},
                    headers={"X-Request-ID": "batch-1"})
    assert r.status_code == 200
    rows = sql(schema, "SELECT inputs, result->>'model_version', probability_of_default "
                       "FROM decisions WHERE request_id = 'batch-1'")
    assert len(rows) == 5 and rows[0][1] == r.json["model_version"]
    assert rows[0][2] == pytest.approx(r.json["results"][0]["probability_of_default"])
    assert rows[0][0].keys() == application.keys()
    app.extensions["credit_risk"]["decisions"].close()


def test_serving_fails_closed_when_the_database_is_unreachable(trained, schema):
    from serving import create_app
    from tests.serving.servers import metric

    settings = trained[0].model_copy(update={"decision_log": url_for(schema, port=1),
                                             "decision_log_commit_timeout_s": 3.0})
    app = create_app(settings, watch=False)
    client = app.test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503 and not ready.json["decision_log"]["ok"]
    assert "OperationalError" in ready.json["decision_log"]["last_error"]
    r = client.post("/api/v1/predict", json=_application(client))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert "probability_of_default" not in r.json
    assert metric(client, "credit_risk_decision_log_failures_total") >= 1
    app.extensions["credit_risk"]["decisions"].close()


def test_serving_is_not_ready_on_an_unmigrated_schema(trained, pg_url):
    from serving import create_app

    app = create_app(trained[0].model_copy(update={"decision_log": pg_url}), watch=False)
    ready = app.test_client().get("/ready")
    assert ready.status_code == 503
    assert "credit-risk decisions migrate" in ready.json["decision_log"]["last_error"]
    app.extensions["credit_risk"]["decisions"].close()


def test_gunicorn_workers_write_through_their_own_writer(trained, pg_url, schema, tmp_path):
    """Two gunicorn workers (forked processes), each committing on its own connection."""
    from tests.serving.servers import Gunicorn, free_port

    PostgresDecisionLog(pg_url).migrate()
    port = free_port()
    env = {**os.environ, "CREDIT_RISK_REGISTRY_URL": str(trained[0].registry.url),
           "CREDIT_RISK_BIND": f"127.0.0.1:{port}", "CREDIT_RISK_WORKERS": "2",
           "CREDIT_RISK_DECISION_LOG": pg_url, "CREDIT_RISK_RELOAD_INTERVAL_S": "0",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                                 "serving/gunicorn.conf.py", "serving.wsgi:app"],
                                cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Gunicorn(f"http://127.0.0.1:{port}", proc, log)
    try:
        server.wait_until(lambda: server.get("/ready")[0] == 200)
        application = server.application()
        ids = []
        for _ in range(20):
            status, body = server.get("/api/v1/predict", application)
            assert status == 200, body
            ids.append(json.loads(body)["request_id"])
            assert sql(schema, "SELECT count(*) FROM decisions WHERE request_id = %s",
                       (ids[-1],)) == [(1,)]
        pids = sql(schema, "SELECT count(DISTINCT pid) FROM pg_stat_activity "
                           "WHERE application_name = %s", (schema,))[0][0]
        assert pids >= 1
    finally:
        assert server.stop() == 0, server.output()


def test_the_default_file_log_imports_no_database_code(tmp_path):
    code = ("import sys; from credit_risk.config import Settings; "
            "from credit_risk.records.backends import open_decision_log; "
            f"d = open_decision_log(Settings(decision_log={str(tmp_path / 'd.jsonl')!r})); "
            "d.write('r', [{}], [{}]); "
            "assert not {'sqlalchemy', 'psycopg', 'alembic'} & set(sys.modules), sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
