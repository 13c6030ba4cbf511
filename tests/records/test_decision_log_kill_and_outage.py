"""Issue 21, the durability promise of the PostgreSQL decision log under gunicorn, with the spool
of the image and compose stack (sync workers, as they run it, and gthread workers) and without
it (group commit, gthread workers):
under load from client threads, one worker is killed with SIGKILL, the database crashes and
comes back, and at the end the whole server is killed as `docker kill` would (every process at
once), then started again (with the spool: what it holds is shipped). Then the decisions are
counted: every answer 200 is in the table exactly once (by request id), no request id is there
twice, and everything that was not answered 200 was a 503 with Retry-After or a connection the
killed worker dropped. While the database is down, the spool answers every request; without a
spool, every request is a 503."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

import pytest

from credit_risk.records.backends import decision_log_at
from credit_risk.records.decisions_pg import PostgresDecisionLog
from credit_risk.records.decisions_spool import SpooledDecisionLog
from tests.records.cluster import Cluster
from tests.records.load import DROPPED, Load
from tests.records.test_decision_log_under_database_faults import COMMIT_TIMEOUT_S, _migrate
from tests.serving.servers import gunicorn

pytestmark = [pytest.mark.integration]



def workers_of(master: int) -> list[int]:
    """The pids of the gunicorn master's worker processes."""
    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == master:
            children.append(int(pid))
    return children


def in_table(db: Cluster) -> dict[str, int]:
    return dict(db.sql("SELECT request_id, count(*) FROM decisions "
                       "WHERE request_id <> 'probe' GROUP BY request_id"))


@pytest.mark.parametrize(("mode", "threads"), [
    ("spool", "1"),  # the image's and the compose stack's configuration: sync workers
    pytest.param("spool", "8", marks=pytest.mark.slow),  # gthread: waiting requests share fsyncs
    pytest.param("group-commit", "8", marks=pytest.mark.slow)])
def test_answered_decisions_survive_a_killed_worker_a_database_crash_and_a_killed_server(
        mode, threads, trained, cluster: Cluster, tmp_path):
    url = cluster.url("app")
    _migrate(url)
    spool = tmp_path / "spool"
    with gunicorn(trained[0].registry.url, tmp_path, reload_interval_s=0, extra_env={
            "CREDIT_RISK_DECISION_LOG": url, "CREDIT_RISK_THREADS": threads,
            "CREDIT_RISK_DECISION_LOG_SPOOL": str(spool) if mode == "spool" else "none",
            "CREDIT_RISK_DECISION_LOG_COMMIT_TIMEOUT_S": str(COMMIT_TIMEOUT_S)}) as server:
        body = json.dumps(server.application()).encode()
        with Load(server.base + "/api/v1/predict", body, threads=12) as load:
            load.wait_for(200, after=0)
            time.sleep(1.0)
            victim = workers_of(server.proc.pid)[0]
            os.kill(victim, signal.SIGKILL)  # mid-request: its in-flight calls are dropped
            server.wait_until(lambda: len(set(workers_of(server.proc.pid)) - {victim}) == 2)
            load.wait_for(200, after=time.monotonic())
            time.sleep(1.0)
            stopping = time.monotonic()
            cluster.stop("immediate")  # a crash of the database, under load
            stopped = time.monotonic()
            load.wait_for(200 if mode == "spool" else 503, after=stopping)
            time.sleep(1.5)
            starting = time.monotonic()
            cluster.start()
            started = time.monotonic()
            load.wait_for(200, after=started)
            if mode == "spool":  # what was answered while it was down is shipped now
                answered_then = {c.request_id for c in list(load.calls)
                                 if c.status == 200 and c.at < starting}
                server.wait_until(lambda: answered_then <= set(in_table(cluster)), timeout=30)
            time.sleep(1.0)
            # `docker kill`: every process of the server at once, under load
            for pid in [server.proc.pid, *workers_of(server.proc.pid)]:
                os.kill(pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
            time.sleep(0.5)
    if mode == "spool":  # the container starts again: its spool is shipped
        target = decision_log_at(url)
        assert isinstance(target, PostgresDecisionLog)
        restarted = SpooledDecisionLog(target, spool)
        assert restarted.flush(timeout_s=30)
        restarted.close()
        assert not list(spool.glob("segment-*"))
    calls = load.calls
    statuses = Counter(c.status for c in calls)
    assert set(statuses) <= {200, 503, DROPPED}, statuses
    assert all(c.retry_after and int(c.retry_after) > 0 for c in calls if c.status == 503)
    outage = [c for c in calls if stopped <= c.at < starting]
    # without a spool nothing is answered while the database is down; with one, everything
    assert outage and {c.status for c in outage} == {200 if mode == "spool" else 503}
    answered = [c.request_id for c in calls if c.status == 200]
    assert len(set(answered)) == len(answered)
    logged = in_table(cluster)
    missing = [rid for rid in answered if rid not in logged]
    assert not missing, f"{len(missing)} answered decisions are not in the log: {missing[:5]}"
    twice = {rid: n for rid, n in logged.items() if n != 1}
    assert not twice, f"decisions logged more than once: {list(twice.items())[:5]}"
    print(f"\nKILL+OUTAGE {mode}: " + json.dumps({
        "requests": len(calls), "answered": len(answered), "in_log": sum(logged.values()),
        "503": statuses[503], "dropped": statuses[DROPPED], "during_outage": len(outage),
        "logged_not_answered": len(logged) - len(answered)}))
