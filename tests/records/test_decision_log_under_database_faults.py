"""Issue 18, "PostgreSQL decision log under faults": the Flask app (a threaded server in this
process) takes load from client threads while its database, a throwaway cluster of its own,
is stopped and restarted, refuses connections at start, runs out of connection slots, or cannot
commit within the statement timeout. Every answered decision (HTTP 200) must be in the table;
while the log cannot write, the answer is 503 with Retry-After (nothing else); serving recovers
by itself when the database is back. Each test prints its figures (run with -s)."""

from __future__ import annotations

import json
import time
from collections import Counter

import psycopg
import pytest

from credit_risk.records.backends import decision_log_at
from credit_risk.records.decisions import DecisionLogError
from serving import create_app
from tests.records.cluster import Cluster
from tests.records.load import Call, predict_load
from tests.serving.servers import gunicorn, in_thread

pytestmark = [pytest.mark.integration]

COMMIT_TIMEOUT_S = 1.0


def _app(trained, url: str, **update):
    settings = trained[0].model_copy(update={
        "decision_log": url, "decision_log_commit_timeout_s": COMMIT_TIMEOUT_S, **update})
    app = create_app(settings, watch=False)
    app.extensions["credit_risk"]["decisions"].probe_interval_s = 0.2
    return app


def _migrate(url: str) -> None:
    with decision_log_at(url, commit_timeout_s=COMMIT_TIMEOUT_S) as dlog:
        dlog.migrate()


def _check(db: Cluster, calls: list[Call], name: str, **figures: object) -> dict:
    """Fail closed, checked: every 200 is in the table once; everything else is a 503 with
    Retry-After. Prints the figures."""
    statuses = Counter(c.status for c in calls)
    assert set(statuses) <= {200, 503}, statuses
    assert all(c.retry_after and int(c.retry_after) > 0 for c in calls if c.status == 503)
    answered = [c.request_id for c in calls if c.status == 200]
    logged = dict(db.sql("SELECT request_id, count(*) FROM decisions "
                         "WHERE request_id <> 'probe' GROUP BY request_id"))
    missing = [rid for rid in answered if logged.get(rid) != 1]
    assert not missing, f"{len(missing)} answered decisions are not in the log: {missing[:5]}"
    out = {"requests": len(calls), "answered": len(answered),
           "in_log": sum(logged.values()), "answered_in_log": len(answered) - len(missing),
           "503": statuses[503], **figures}
    print(f"\nFAULT {name}: {json.dumps(out)}")
    return out


@pytest.mark.slow
def test_server_stopped_and_restarted_during_load(trained, cluster):
    url = cluster.url("app")
    _migrate(url)
    app = _app(trained, url)
    client = app.test_client()
    application = {f["name"]: f["default"]
                   for f in client.get("/api/v1/model").json["inputs"]}
    with in_thread(app) as base, predict_load(base, application) as load:
        load.wait_for(200, after=0)
        time.sleep(1.0)
        stopping = time.monotonic()
        cluster.stop("immediate")  # a crash of the server, under load
        stopped = time.monotonic()  # the server processes are gone
        load.wait_for(503, after=stopping)
        assert client.get("/ready").status_code == 503
        time.sleep(2.0)
        starting = time.monotonic()
        cluster.start()
        started = time.monotonic()  # accepting connections
        recovered = load.wait_for(200, after=started)
        time.sleep(1.0)
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.json
    outage = [c for c in load.calls if stopped <= c.at < starting]
    assert outage and {c.status for c in outage} == {503}  # nothing answered without the log
    _check(cluster, load.calls, "restart", outage_s=round(started - stopping, 2),
           during_outage=len(outage),
           recovery_s=round(recovered - started, 2))
    app.extensions["credit_risk"]["decisions"].close()


@pytest.mark.slow
def test_gunicorn_workers_survive_a_restart_under_load(trained, cluster, tmp_path):
    """The same through gunicorn (two forked workers, each with its own connection): both
    fail closed while the server is down and answer again when it is back."""
    url = cluster.url("app")
    _migrate(url)
    with gunicorn(trained[0].registry.url, tmp_path, reload_interval_s=0, extra_env={
            "CREDIT_RISK_DECISION_LOG": url,
            "CREDIT_RISK_DECISION_LOG_COMMIT_TIMEOUT_S": str(COMMIT_TIMEOUT_S)}) as server:
        with predict_load(server.base, server.application()) as load:
            load.wait_for(200, after=0)
            time.sleep(1.0)
            stopping = time.monotonic()
            cluster.stop("immediate")
            stopped = time.monotonic()
            load.wait_for(503, after=stopping)
            time.sleep(2.0)
            starting = time.monotonic()
            cluster.start()
            started = time.monotonic()
            recovered = load.wait_for(200, after=started)
            time.sleep(1.0)
        server.wait_until(lambda: server.get("/ready")[0] == 200)
        workers = cluster.sql("SELECT count(DISTINCT pid) FROM pg_stat_activity "
                              "WHERE application_name = 'credit-risk-app'")[0][0]
    outage = [c for c in load.calls if stopped <= c.at < starting]
    assert outage and {c.status for c in outage} == {503}
    _check(cluster, load.calls, "restart-gunicorn", outage_s=round(started - stopping, 2),
           during_outage=len(outage), recovery_s=round(recovered - started, 2),
           connections_after=workers)


def test_connection_refused_at_start(trained, cluster):
    """The database is down when the worker starts (the schema was migrated before), and
    also when it should migrate it on start: 503s, then ready once the server is up."""
    url = cluster.url("app")
    _migrate(url)
    cluster.stop("fast")
    app = _app(trained, url)
    client = app.test_client()
    fresh = cluster.url("app", options="-csearch_path%3Dfresh")
    app_migrating = _app(trained, fresh, decision_log_migrate_on_start=True)
    application = {f["name"]: f["default"]
                   for f in client.get("/api/v1/model").json["inputs"]}
    calls = []
    for c in (client, app_migrating.test_client()):
        ready = c.get("/ready")
        assert ready.status_code == 503
        assert "OperationalError" in ready.json["decision_log"]["last_error"]
        r = c.post("/api/v1/predict", json=application)
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
        calls.append(Call(0, r.status_code, r.headers["Retry-After"], None))
    cluster.start()
    cluster.sql("CREATE SCHEMA fresh AUTHORIZATION app")
    started = time.monotonic()
    recovery = {}
    for name, c in (("migrated", client), ("migrate_on_start", app_migrating.test_client())):
        deadline = time.monotonic() + 30
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, c.get("/ready").json
            time.sleep(0.1)
        recovery[name] = round(time.monotonic() - started, 2)
        r = c.post("/api/v1/predict", json=application)
        assert r.status_code == 200, r.json
        calls.append(Call(0, 200, None, r.json["request_id"]))
    answered = [c.request_id for c in calls if c.status == 200]
    assert cluster.sql("SELECT count(*) FROM public.decisions WHERE request_id = %s",
                       (answered[0],)) == [(1,)]
    assert cluster.sql("SELECT count(*) FROM fresh.decisions WHERE request_id = %s",
                       (answered[1],)) == [(1,)]
    print(f"\nFAULT refused-at-start: {json.dumps({'503': 2, 'answered': 2, **recovery})}")
    for a in (app, app_migrating):
        a.extensions["credit_risk"]["decisions"].close()


@pytest.mark.slow
def test_connection_slots_exhausted(trained, cluster):
    """Every connection slot of the server taken by others, and the app's connection killed:
    it cannot reconnect (too many clients) and answers 503 until slots are free again."""
    url = cluster.url("app")
    _migrate(url)
    app = _app(trained, url)
    client = app.test_client()
    application = {f["name"]: f["default"]
                   for f in client.get("/api/v1/model").json["inputs"]}
    hogs: list[psycopg.Connection] = []

    def fill() -> None:
        while True:  # every slot, the superuser's reserved one too
            try:
                hogs.append(psycopg.connect(cluster.conninfo, autocommit=True,
                                            connect_timeout=5))
            except psycopg.OperationalError as exc:
                assert "too many clients" in str(exc) or "connection slots" in str(exc), exc
                return

    def app_backends() -> int:
        return hogs[0].execute("SELECT count(*) FROM pg_stat_activity WHERE "
                               "application_name = 'credit-risk-app'").fetchone()[0]

    with in_thread(app) as base, predict_load(base, application, threads=2) as load:
        load.wait_for(200, after=0)
        fill()
        for _ in range(50):  # kill the app's connections; it races us for the freed slots
            hogs[0].execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'credit-risk-app'")
            time.sleep(0.05)
            fill()
            if app_backends() == 0:
                break
        assert app_backends() == 0
        full = time.monotonic()
        load.wait_for(503, after=full)
        time.sleep(3 * COMMIT_TIMEOUT_S)
        freeing = time.monotonic()
        for conn in hogs:
            conn.close()
        freed = time.monotonic()
        recovered = load.wait_for(200, after=freed)
        time.sleep(0.5)
    # calls that began and ended (a call takes at most the commit bound) while it was full
    during = [c for c in load.calls if full + COMMIT_TIMEOUT_S <= c.at < freeing - COMMIT_TIMEOUT_S]
    assert during and all(c.status == 503 for c in during)
    _check(cluster, load.calls, "slots-exhausted", hogs=len(hogs), during_full=len(during),
           recovery_s=round(recovered - freed, 2))
    assert client.get("/ready").status_code == 200
    app.extensions["credit_risk"]["decisions"].close()


def test_reads_that_hold_the_pool_do_not_block_decisions(trained, cluster):
    """Readers holding every pooled connection of the log (pool_size + max_overflow): a
    further read fails within the pool timeout instead of hanging, and decisions, written on
    their own connection, are still answered and logged."""
    url = cluster.url("app")
    _migrate(url)
    app = _app(trained, url)
    client = app.test_client()
    application = {f["name"]: f["default"]
                   for f in client.get("/api/v1/model").json["inputs"]}
    assert client.post("/api/v1/predict", json=application).status_code == 200
    dlog = app.extensions["credit_risk"]["decisions"]
    readers = []
    for _ in range(dlog.db.pool_size + dlog.db.max_overflow):
        chunks = dlog.iter_chunks(chunk_rows=1)
        next(chunks)  # a server-side cursor open: its connection stays checked out
        readers.append(chunks)
    with pytest.raises(DecisionLogError, match="TimeoutError|QueuePool"):
        dlog.read()
    calls = [Call(0, r.status_code, r.headers.get("Retry-After"), (r.json or {}).get(
        "request_id")) for r in (client.post("/api/v1/predict", json=application)
                                 for _ in range(20))]
    for chunks in readers:
        chunks.close()
    assert all(c.status == 200 for c in calls)
    _check(cluster, calls, "pool-exhausted", pool=len(readers))
    dlog.close()


@pytest.mark.slow
def test_statement_timeout_under_load(trained, cluster):
    """The table locked by another session: commits wait until the server cancels them (the
    commit bound); 503s meanwhile, and answers again once the lock is gone."""
    url = cluster.url("app")
    _migrate(url)
    app = _app(trained, url)
    client = app.test_client()
    application = {f["name"]: f["default"]
                   for f in client.get("/api/v1/model").json["inputs"]}
    with in_thread(app) as base, predict_load(base, application) as load:
        load.wait_for(200, after=0)
        lock = psycopg.connect(cluster.conninfo)
        lock.execute("LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE")
        locked = time.monotonic()
        load.wait_for(503, after=locked)
        time.sleep(3 * COMMIT_TIMEOUT_S)
        unlocking = time.monotonic()
        lock.rollback()
        lock.close()
        unlocked = time.monotonic()
        recovered = load.wait_for(200, after=unlocked)
        time.sleep(0.5)
    cancelled = [line for line in (cluster.root / "server.log").read_text().splitlines()
                 if "statement timeout" in line]
    assert cancelled  # the server cancelled the stuck commits
    # calls that began and ended (a call takes at most the commit bound) under the lock
    during = [c for c in load.calls if locked <= c.at < unlocking - COMMIT_TIMEOUT_S]
    assert during and all(c.status == 503 for c in during)
    _check(cluster, load.calls, "statement-timeout", cancelled=len(cancelled),
           during_lock=len(during),
           recovery_s=round(recovered - unlocked, 2))
    assert client.get("/ready").status_code == 200
    app.extensions["credit_risk"]["decisions"].close()
