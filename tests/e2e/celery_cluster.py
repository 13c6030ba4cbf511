"""Airflow under CeleryExecutor on this machine, for tests and benchmarks.

A fresh PostgreSQL database for Airflow's metadata (and Celery's results), a Redis DB of its
own as the Celery broker, and Airflow's processes (api-server, scheduler, dag-processor, Celery
workers) started with a fresh AIRFLOW_HOME; DAG runs triggered and read through the REST API.
Used by tests/e2e/test_distributed_run.py and benchmarks/bench_distributed.py.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
START_TIMEOUT_S = 120


WORKER_NAME = "CELERY_CLUSTER_WORKER"  # a worker process's name, in its environment


def worker_hostname() -> str:
    """Airflow's `hostname_callable` in the workers started here: the host and the worker."""
    return f"{socket.gethostname()}-{os.environ.get(WORKER_NAME, 'airflow')}"


def _with_root(env: dict[str, str]) -> str:
    """PYTHONPATH with the repository's root (where this module is imported from) first."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])


class ServerMissing(RuntimeError):
    """PostgreSQL or Redis does not answer (or Redis has no free DB)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def metadata_db() -> Iterator[str]:
    """A new, empty PostgreSQL database: its SQLAlchemy URL (psycopg 3), dropped at the end."""
    import psycopg

    errors, admin, user = [], None, None
    for user in ("root", "postgres"):
        try:
            admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="postgres",
                                    autocommit=True, connect_timeout=5)
            break
        except psycopg.OperationalError as exc:
            errors.append(f"as {user}: {str(exc).strip()}")
    if admin is None:
        raise ServerMissing(f"PostgreSQL does not answer on {PG_HOST}:{PG_PORT} (needed for "
                            "Airflow's metadata database; start it with `pg_ctlcluster "
                            "<version> main start`): " + "; ".join(errors))
    name = f"credit_risk_airflow_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """A Redis DB of its own (the first empty one, claimed by a marker key): its URL, flushed
    at the end."""
    import redis

    probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=5)
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise ServerMissing(f"Redis does not answer on {REDIS_HOST}:{REDIS_PORT} (needed as the "
                            "Celery broker; start it with `redis-server --daemonize yes --bind "
                            f"127.0.0.1`): {exc}") from exc
    try:
        databases = int(probe.config_get("databases").get("databases") or 16)
    except redis.RedisError:  # CONFIG may be disabled; 16 is Redis's default
        databases = 16
    finally:
        probe.close()
    marker = f"credit-risk-distributed-test:{secrets.token_hex(4)}"
    for number in range(databases - 1, 0, -1):  # from the top: DB 0 is everyone's default
        db = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_connect_timeout=5)
        if db.dbsize() == 0 and db.set(marker, "1", nx=True) and db.dbsize() == 1:
            break
        db.close()
    else:
        raise ServerMissing(f"no empty Redis DB among 1..{databases - 1} on "
                            f"{REDIS_HOST}:{REDIS_PORT}")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        db.flushdb()
        db.close()


def airflow_env(home: Path, port: int, db_url: str, broker_url: str, dags: Path,
                extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without Airflow's, the project's and AWS's variables, and
    an Airflow under CeleryExecutor in `home` reading DAGs from `dags`; then `extra`."""
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": "admin-pw"}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "CREDIT_RISK_", "AWS_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__AUTH_MANAGER=(
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        # psycopg 3 for both of Airflow's engines (3.3 would derive asyncpg for the async one).
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=db_url,
        AIRFLOW__CELERY__BROKER_URL=broker_url,
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+{db_url}",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        # Runs only when triggered: no scheduled run of the weekly DAG on unpausing.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        GX_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", SCARF_ANALYTICS="false",
        OMP_NUM_THREADS="1",
    )
    return {**env, **extra}


@dataclass
class Cluster:
    home: Path
    env: dict[str, str]
    port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.home / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env={**self.env, **(env or {})},
            cwd=self.home,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start_worker(self, name: str, concurrency: int, hostname: str) -> None:
        """A Celery worker process running `concurrency` tasks at a time, named `hostname`;
        its task instances record `<this host>-<name>` as their hostname (`worker_hostname`),
        so that workers on one machine tell apart."""
        self.start(name, "celery", "worker", "--concurrency", str(concurrency),
                   "--celery-hostname", hostname, "--skip-serve-logs", "--without-gossip",
                   "--without-mingle",
                   env={WORKER_NAME: name, "AIRFLOW__CORE__HOSTNAME_CALLABLE":
                        f"{__name__}.worker_hostname", "PYTHONPATH": _with_root(self.env)})

    def log_tail(self, name: str, chars: int = 4000) -> str:
        text = (self.home / f"{name}.log").read_text(errors="replace")
        return f"--- {name}.log (last {chars} chars) ---\n{text[-chars:]}"

    def assert_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited ({proc.returncode})\n{self.log_tail(name)}"

    def stop(self) -> None:
        """TERM every process group, then KILL what is left, the groups and any descendant
        that left its group (found by pid before the TERM)."""
        import psutil

        descendants = []
        for proc in self.procs.values():
            with contextlib.suppress(psutil.Error):
                descendants += psutil.Process(proc.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(descendants, timeout=5)

    def celery_results(self) -> dict[str, str]:
        """Celery's result backend (a table in the metadata database): task id -> status."""
        import psycopg

        url = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg",
                                                                      "postgresql")
        with psycopg.connect(url) as conn:
            return dict(conn.execute("SELECT task_id, status FROM celery_taskmeta").fetchall())

    # REST API
    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, json.loads(data) if data else {}
        finally:
            conn.close()

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float,
                 interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.assert_alive()
            with contextlib.suppress(ConnectionError, OSError):
                if (result := check()) is not None:
                    return result
            assert time.monotonic() < deadline, (
                f"timed out after {timeout:.0f}s waiting for {what}\n"
                + "\n".join(self.log_tail(n, 2000) for n in self.procs))
            time.sleep(interval)

    def login(self) -> None:
        def token():
            status, body = self.request("POST", "/auth/token",
                                        {"username": "admin", "password": "admin-pw"})
            return body["access_token"] if status == 201 else None

        self.token = self.wait_for("the api-server", token, START_TIMEOUT_S, 0.5)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Wait until the dag-processor has parsed `dag_id`, unpause it, trigger a run with
        `conf`; return the run's id."""
        dag_path = f"/api/v2/dags/{dag_id}"
        self.wait_for(f"{dag_id} to be parsed",
                      lambda: True if self.request("GET", dag_path)[0] == 200 else None,
                      START_TIMEOUT_S)
        status, body = self.request("PATCH", dag_path, {"is_paused": False})
        assert status == 200 and body["is_paused"] is False, body
        status, run = self.request("POST", f"{dag_path}/dagRuns",
                                   {"logical_date": None, "conf": conf})
        assert status == 200, run
        return str(run["dag_run_id"])

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state, success or failed."""
        def finished():
            state = self.request("GET", self.run_path(dag_id, run_id))[1].get("state")
            return state if state in ("success", "failed") else None

        return str(self.wait_for(f"run {run_id}", finished, timeout, 2.0))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances?limit=1000"
        status, body = self.request("GET", path)
        assert status == 200, body
        return list(body["task_instances"])

    def task_report(self, dag_id: str, run_id: str) -> str:
        """The run's task states, and the logs of the tasks that did not succeed."""
        status, body = self.request("GET", f"{self.run_path(dag_id, run_id)}/taskInstances")
        lines = [f"task instances ({status}):"]
        for ti in body.get("task_instances", []):
            lines.append(f"  {ti['task_id']}[{ti['map_index']}]: {ti['state']}")
            if ti["state"] in ("success", "skipped"):
                continue
            folder = (self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
                      / f"task_id={ti['task_id']}")
            for log in sorted(folder.rglob("*.log")):
                text = log.read_text(errors="replace")
                errors = [line for line in text.splitlines()
                          if '"level":"error"' in line or '"level":"critical"' in line]
                lines += [f"--- {log.relative_to(folder)}: errors ---", *errors,
                          f"--- {log.relative_to(folder)}: last 3000 chars ---", text[-3000:]]
        return "\n".join(lines)


@contextlib.contextmanager
def running(home: Path, env: dict[str, str], workers: dict[str, int]) -> Iterator[Cluster]:
    """Migrate the metadata database, start the api-server, the scheduler, the dag-processor
    and one Celery worker process per entry of `workers` (hostname -> concurrency), log in;
    stop them all at the end."""
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                             cwd=home, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-3000:]
    port = int(env["AIRFLOW__API__BASE_URL"].rsplit(":", 1)[1])
    cluster = Cluster(home, env, port)
    try:
        cluster.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1")
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        for n, (hostname, concurrency) in enumerate(workers.items()):
            cluster.start_worker(f"celery-worker-{n}" if n else "celery-worker", concurrency,
                                 hostname)
        cluster.login()
        yield cluster
    finally:
        cluster.stop()
