"""Airflow scaled out: the repository's dags/ unchanged under CeleryExecutor.

A fresh PostgreSQL database holds Airflow's metadata (and Celery's results), a dedicated Redis
DB is the Celery broker; the scheduler, the dag-processor, a Celery worker and the api-server
run as separate processes with a fresh AIRFLOW_HOME. `credit_risk_training` is triggered through
the REST API like an operator would, and the model it publishes is scored by the serving app
pointed at the same registry. Run folders and registry are on the local S3-compatible server
(tests/conftest.py's `s3_server`): the tasks hand each other s3:// URLs only, so workers on
other hosts would run them the same way.

PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) must answer: this machine
and CI have both, so a missing server fails the test, it never skips.
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
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import fsspec
import pytest

from tests.conftest import small_settings

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
DAG_ID = "credit_risk_training"
MODELS = ["logistic_regression", "xgboost"]
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the servers: a fresh PostgreSQL database, a dedicated Redis DB ------------------------

@pytest.fixture
def metadata_db():
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
        pytest.fail(f"PostgreSQL does not answer on {PG_HOST}:{PG_PORT} (needed for Airflow's "
                    f"metadata database; start it with `pg_ctlcluster <version> main start`): "
                    + "; ".join(errors), pytrace=False)
    name = f"credit_risk_airflow_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def broker():
    """A Redis DB of its own (the first empty one, claimed by a marker key): its URL, flushed
    at the end."""
    import redis

    probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=5)
    try:
        probe.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis does not answer on {REDIS_HOST}:{REDIS_PORT} (needed as the Celery "
                    f"broker; start it with `redis-server --daemonize yes --bind 127.0.0.1`): "
                    f"{exc}", pytrace=False)
    try:
        databases = int(probe.config_get("databases").get("databases", 16))
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
        pytest.fail(f"no empty Redis DB among 1..{databases - 1} on {REDIS_HOST}:{REDIS_PORT}",
                    pytrace=False)
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        db.flushdb()
        db.close()


# -- the Airflow processes -----------------------------------------------------------------

@dataclass
class Cluster:
    home: Path
    env: dict[str, str]
    port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""

    def start(self, name: str, *args: str) -> None:
        log = (self.home / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env=self.env, cwd=self.home,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

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
    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
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

    def wait_for(self, what: str, check, timeout: float, interval: float = 1.0):
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

    def task_report(self, run_id: str) -> str:
        """The run's task states, and the logs of the tasks that did not succeed."""
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        status, body = self.request("GET", path)
        lines = [f"task instances ({status}):"]
        for ti in body.get("task_instances", []):
            lines.append(f"  {ti['task_id']}[{ti['map_index']}]: {ti['state']}")
            if ti["state"] in ("success", "skipped"):
                continue
            folder = (self.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
                      / f"task_id={ti['task_id']}")
            for log in sorted(folder.rglob("*.log")):
                text = log.read_text(errors="replace")
                errors = [line for line in text.splitlines()
                          if '"level":"error"' in line or '"level":"critical"' in line]
                lines += [f"--- {log.relative_to(folder)}: errors ---", *errors,
                          f"--- {log.relative_to(folder)}: last 3000 chars ---", text[-3000:]]
        return "\n".join(lines)


def _settings_env(settings, models: list[str]) -> dict[str, str]:
    """The project's settings as the CREDIT_RISK_* environment every Airflow process gets."""
    return {
        "CREDIT_RISK_DATA_DIR": str(settings.data_dir),
        "CREDIT_RISK_RUNS_DIR": str(settings.runs_dir),
        "CREDIT_RISK_REGISTRY_URL": str(settings.registry_url),
        "CREDIT_RISK_GX_DIR": str(ROOT / "great_expectations"),
        "CREDIT_RISK_DECISION_LOG": str(settings.decision_log),
        "CREDIT_RISK_N_CUSTOMERS": str(settings.n_customers),
        "CREDIT_RISK_MODELS": json.dumps(models),
        "CREDIT_RISK_SEARCH_ITERATIONS": "1",
        "CREDIT_RISK_CV_FOLDS": "2",
    }


@pytest.fixture
def store(s3_server, s3_url, tmp_path):
    """Where the tasks write: the run folders and the registry on the S3-compatible server (a
    fresh prefix); the endpoint and credentials every process needs to reach it, as
    environment variables."""
    endpoint, _ = s3_server
    settings = small_settings(tmp_path, runs_dir=f"{s3_url}/runs",
                              registry_url=f"{s3_url}/registry", cv_folds=2,
                              search_iterations=1, models=tuple(MODELS))
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                      "AWS_DEFAULT_REGION")}
    return settings, {**env, "AWS_ENDPOINT_URL_S3": endpoint}


@pytest.fixture
def cluster(metadata_db, broker, store, tmp_path):
    home = tmp_path / "airflow-home"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": "admin-pw"}))
    port = _free_port()
    settings, store_env = store

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "CREDIT_RISK_", "AWS_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__AUTH_MANAGER=(
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        # psycopg 3 for both of Airflow's engines (3.3 would derive asyncpg for the async one).
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_db,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=metadata_db,
        AIRFLOW__CELERY__BROKER_URL=broker,
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+{metadata_db}",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
        # Runs only when triggered: no scheduled run of the weekly DAG on unpausing.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        GX_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", SCARF_ANALYTICS="false",
        OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT),
        **_settings_env(settings, MODELS), **store_env,
    )

    # The source tables first: ingest reads them, it never generates data.
    generate = subprocess.run([str(Path(sys.executable).parent / "credit-risk"), "generate-data",
                               "--customers", str(settings.n_customers)],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert generate.returncode == 0, generate.stderr[-3000:]
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                             cwd=home, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-3000:]

    cluster = Cluster(home, env, port)
    try:
        cluster.start("api-server", "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1")
        cluster.start("scheduler", "scheduler")
        cluster.start("dag-processor", "dag-processor")
        cluster.start("celery-worker", "celery", "worker", "--concurrency", "2",
                      "--celery-hostname", f"credit-risk-test-{secrets.token_hex(3)}@%h",
                      "--skip-serve-logs", "--without-gossip", "--without-mingle")

        def login():
            status, body = cluster.request("POST", "/auth/token",
                                           {"username": "admin", "password": "admin-pw"})
            return body["access_token"] if status == 201 else None

        cluster.token = cluster.wait_for("the api-server", login, START_TIMEOUT_S, 0.5)
        yield cluster, settings
    finally:
        cluster.stop()


def test_training_dag_runs_on_celery_workers_and_its_model_serves(cluster):
    started = time.monotonic()
    cluster, settings = cluster
    dag_path = f"/api/v2/dags/{DAG_ID}"

    # The dag-processor parses dags/ into the metadata DB; then unpause and trigger by hand.
    cluster.wait_for(f"{DAG_ID} to be parsed",
                     lambda: True if cluster.request("GET", dag_path)[0] == 200 else None,
                     START_TIMEOUT_S)
    status, body = cluster.request("PATCH", dag_path, {"is_paused": False})
    assert status == 200 and body["is_paused"] is False, body
    status, run = cluster.request("POST", f"{dag_path}/dagRuns",
                                  {"logical_date": None, "conf": {"models": MODELS}})
    assert status == 200, run
    run_id = run["dag_run_id"]
    run_path = f"{dag_path}/dagRuns/{quote(run_id, safe='')}"

    def finished():
        state = cluster.request("GET", run_path)[1].get("state")
        return state if state in ("success", "failed") else None

    state = cluster.wait_for(f"run {run_id}", finished, RUN_TIMEOUT_S, 2.0)
    assert state == "success", cluster.task_report(run_id)
    ran = time.monotonic() - started

    # Every task ran on the Celery worker (the executor recorded its hostname and queue).
    status, body = cluster.request("GET", f"{run_path}/taskInstances")
    tis = {(ti["task_id"], ti["map_index"]): ti for ti in body["task_instances"]}
    assert {k: ti["state"] for k, ti in tis.items()} == {
        ("ingest", -1): "success", ("validate", -1): "success",
        ("data_changed", -1): "success", ("prepare", -1): "success",
        ("candidates", -1): "success", ("train", 0): "success", ("train", 1): "success",
        ("compare", -1): "success", ("publish", -1): "success"}
    # ...each through Celery: its result is in the result backend (the metadata database),
    # SUCCESS once the worker's supervisor is done with it, a moment after the task's state.
    def celery_done():
        results = cluster.celery_results()
        return results if set(results.values()) == {"SUCCESS"} else None

    assert len(cluster.wait_for("Celery's results", celery_done, 30, 0.5)) == len(tis)

    # What the tasks handed each other (XCom): URLs in the object store, and a version id.
    xcom = {}
    for task_id, map_index in tis:
        status, entry = cluster.request(
            "GET", f"{run_path}/taskInstances/{task_id}/xcomEntries/return_value"
                   f"?map_index={map_index}")
        assert status == 200, (task_id, entry)
        xcom[task_id, map_index] = entry["value"]
    runs = f"{settings.run_dir(run_id)}/"
    assert runs.startswith("s3://")
    assert {k: v for k, v in xcom.items() if isinstance(v, str) and k[0] != "publish"} == {
        ("ingest", -1): f"{runs}raw/snapshot.json",
        ("validate", -1): f"{runs}validation/validation.json",
        ("prepare", -1): f"{runs}split", ("compare", -1): f"{runs}comparison.json",
        ("train", 0): f"{runs}candidates/logistic_regression.joblib",
        ("train", 1): f"{runs}candidates/xgboost.joblib"}
    # Nothing was written to local folders but the source tables and Airflow's own.
    assert sorted(p.name for p in settings.data_dir.parent.iterdir()) == ["airflow-home", "data"]

    # The model was published to the registry, and serving pointed at it scores with it.
    from credit_risk.registry.store import Registry
    from serving import create_app

    registry = Registry(settings.registry_url)
    champion = registry.alias_version("champion")
    assert champion and registry.versions() == [champion] and xcom["publish", -1] == champion
    fs, root = fsspec.core.url_to_fs(settings.registry_url)
    assert fs.protocol[0] == "s3" and fs.isfile(f"{root}/models/{champion}/manifest.json")
    manifest = registry.verify(champion)
    assert {r["model"] for r in manifest["comparison"]} == set(MODELS)
    client = create_app(settings, watch=False).test_client()
    application = {f["name"]: f["default"] for f in manifest["inputs"]}
    r = client.post("/api/v1/predict", json=application)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json["model_version"] == champion and 0 <= r.json["probability_of_default"] <= 1
    print(f"\ndistributed run: triggered to success in {ran:.0f}s")
