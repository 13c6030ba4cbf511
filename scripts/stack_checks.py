"""The checks of `make test-stack` against a running compose stack (scripts/test-stack.sh).

    python3 scripts/stack_checks.py --airflow URL --serving URL --application JSON -- COMPOSE...

Standard library only (runs on the CI host's python3). The compose command after `--` runs
`exec` in the stack's containers. Secrets come from the environment (the stack's env file):
AIRFLOW_ADMIN_PASSWORD, SERVING_API_KEYS, POSTGRES_USER.

1. the api-server answers; log in as admin; both DAGs parsed
2. trigger credit_risk_training (logistic_regression + xgboost) over the REST API, wait for
   success; every task ran on the Celery worker; the version it published is on s3://
3. serving turns ready with that champion, loaded from the object store (GET /api/v1/model)
4. examples/application.json scores over HTTP with that version (API key required), and a batch
   of varied applications (enough traffic for the drift check)
5. the decisions are rows in PostgreSQL (`decisions` database), request ids included
6. trigger credit_risk_monitoring, wait for success: its drift report read that traffic
7. the Airflow UI's credit-risk models page (plugin) lists the champion
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

TRAINING, MONITORING = "credit_risk_training", "credit_risk_monitoring"
MODELS = ["logistic_regression", "xgboost"]
START_TIMEOUT_S = 300
RUN_TIMEOUT_S = 900
BATCH = 240  # above the drift check's minimum (CREDIT_RISK_DRIFT_MIN_ROWS, 200)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def http(method: str, url: str, body: Any = None, headers: dict | None = None,
         timeout: float = 30) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(what: str, check, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError as exc:  # connection refused / reset while a service starts
            result, last = None, exc
        if result is not None:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last})")


class Airflow:
    def __init__(self, url: str) -> None:
        self.url, self.token = url.rstrip("/"), ""

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return http(method, self.url + path, body, headers)

    def login(self, password: str) -> str | None:
        status, body = http("POST", f"{self.url}/auth/token",
                            {"username": "admin", "password": password})
        if status == 201:
            self.token = body["access_token"]
            return self.token
        return None

    def run(self, dag_id: str, conf: dict) -> tuple[str, dict]:
        """Unpause, trigger, wait for the end; the run id and its task instances."""
        status, body = self("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200, (status, body)
        status, run = self("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                           {"logical_date": None, "conf": conf})
        assert status == 200, (status, run)
        run_id = run["dag_run_id"]
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
        log(f"{dag_id}: triggered {run_id}")
        started = time.monotonic()

        def finished():
            state = self("GET", path)[1].get("state")
            return state if state in ("success", "failed") else None

        state = wait_for(f"{dag_id} run {run_id}", finished, RUN_TIMEOUT_S, 3)
        tis = self("GET", f"{path}/taskInstances")[1]["task_instances"]
        states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in tis}
        log(f"{dag_id}: {state} in {time.monotonic() - started:.0f}s: {states}")
        if state != "success":
            for ti in tis:
                if ti["state"] not in ("success", "skipped"):
                    log_path = (f"{path}/taskInstances/{ti['task_id']}/logs/"
                                f"{ti.get('try_number') or 1}?map_index={ti['map_index']}")
                    print(f"--- {ti['task_id']}[{ti['map_index']}] log ---\n"
                          f"{json.dumps(self('GET', log_path)[1])[-4000:]}")
            raise AssertionError(f"{dag_id} run {run_id}: {state}")
        return run_id, {ti["task_id"] if ti["map_index"] < 0 else
                        f"{ti['task_id']}[{ti['map_index']}]": ti for ti in tis}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        status, entry = self("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
                                    f"/taskInstances/{task_id}/xcomEntries/return_value")
        assert status == 200, (task_id, status, entry)
        return entry["value"]


def varied(application: dict, n: int, seed: int = 7) -> list[dict]:
    """n applications around the example (numbers scaled, categories kept valid)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = dict(application)
        for name, value in application.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value:
                row[name] = type(value)(max(0, value * rng.uniform(0.6, 1.4)))
        row["age"] = rng.randint(21, 65)
        row["credit_utilization_ratio"] = rng.randint(0, 95)
        row["delinquent_months"] = min(rng.randint(0, 6), row["total_loan_months"])
        row["total_dpd"] = row["delinquent_months"] * rng.randint(0, 20)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--airflow", required=True)
    parser.add_argument("--serving", required=True)
    parser.add_argument("--application", required=True)
    parser.add_argument("compose", nargs="+", help="the compose command (after --)")
    args = parser.parse_args()
    compose = args.compose
    serving = args.serving.rstrip("/")
    api_key = os.environ["SERVING_API_KEYS"].split(",")[0]
    auth = {"X-API-Key": api_key}
    t0 = time.monotonic()

    def exec_in(service: str, *cmd: str) -> str:
        out = subprocess.run([*compose, "exec", "-T", service, *cmd], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, (cmd, out.stdout[-2000:], out.stderr[-2000:])
        return out.stdout

    # 1. Airflow is up, the DAGs are parsed.
    airflow = Airflow(args.airflow)
    wait_for("the api-server's login", lambda: airflow.login(os.environ["AIRFLOW_ADMIN_PASSWORD"]),
             START_TIMEOUT_S)
    log(f"api-server: logged in as admin after {time.monotonic() - t0:.0f}s")
    for dag_id in (TRAINING, MONITORING):
        wait_for(f"{dag_id} to be parsed",
                 lambda d=dag_id: True if airflow("GET", f"/api/v2/dags/{d}")[0] == 200 else None,
                 START_TIMEOUT_S)
    # The serving app has no model yet: alive, not ready.
    wait_for("serving to answer /health",
             lambda: True if http("GET", f"{serving}/health")[0] == 200 else None, START_TIMEOUT_S)
    status, body = http("GET", f"{serving}/ready")
    assert status == 503, (status, body)

    # 2. Training through the REST API, on the Celery worker.
    run_id, tis = airflow.run(TRAINING, {"models": MODELS})
    assert {k: ti["state"] for k, ti in tis.items()} == {
        "ingest": "success", "validate": "success", "data_changed": "success",
        "prepare": "success", "candidates": "success", "train[0]": "success",
        "train[1]": "success", "compare": "success", "publish": "success"}, tis
    assert all(ti["queue"] == "default" and ti["hostname"] for ti in tis.values()), tis
    champion = airflow.xcom(TRAINING, run_id, "publish")
    assert airflow.xcom(TRAINING, run_id, "ingest").startswith("s3://credit-risk/runs/")
    manifest_url = f"s3://credit-risk/registry/models/{champion}/manifest.json"
    listing = exec_in("airflow-worker", "python", "-c",
                      "import fsspec, sys; print(fsspec.filesystem('s3').isfile(sys.argv[1]))",
                      manifest_url)
    assert listing.strip() == "True", (manifest_url, listing)
    log(f"published {champion} to s3://credit-risk/registry")

    # 3. Serving picks the champion up from the object store, without a restart.
    def ready():
        status, body = http("GET", f"{serving}/ready")
        return body if status == 200 else None

    wait_for("serving to load the champion", ready, 120)
    status, model = http("GET", f"{serving}/api/v1/model", headers=auth)
    assert status == 200 and model.get("version", model.get("model_version")) == champion, model
    log(f"serving: ready with {champion}")

    # 4. Score the example application over HTTP (the API key is required), and a batch.
    with open(args.application) as f:
        application = json.load(f)
    status, body = http("POST", f"{serving}/api/v1/predict", application)
    assert status == 401, (status, body)
    status, scored = http("POST", f"{serving}/api/v1/predict", application, auth)
    assert status == 200, (status, scored)
    assert scored["model_version"] == champion and 0 <= scored["probability_of_default"] <= 1
    assert scored["risk"] in ("High", "Low") and 300 <= scored["credit_score"] <= 900, scored
    log(f"scored examples/application.json: {json.dumps(scored)[:300]}")
    status, batch = http("POST", f"{serving}/api/v1/predict/batch",
                         {"applications": varied(application, BATCH)},
                         auth, timeout=60)
    assert status == 200, (status, str(batch)[:2000])

    # 5. The decisions are in PostgreSQL.
    user = os.environ.get("POSTGRES_USER", "credit_risk")
    rows = exec_in("postgres", "psql", "-U", user, "-d", "decisions", "-tAc",
                   "SELECT count(*), count(*) FILTER (WHERE request_id = '"
                   + scored["request_id"].replace("'", "") + "'), "
                   + "count(DISTINCT model_version) FROM decisions").strip()
    total, this_one, versions = (int(x) for x in rows.split("|"))
    assert this_one == 1 and total >= BATCH + 1 and versions == 1, rows
    log(f"PostgreSQL: {total} decisions, request {scored['request_id']} among them")

    # 6. The monitoring DAG reads that traffic from PostgreSQL and writes its drift report.
    mon_run, mon_tis = airflow.run(MONITORING, {})
    assert mon_tis["drift_report"]["state"] == "success", mon_tis
    drift_path = airflow.xcom(MONITORING, mon_run, "drift_report")
    assert drift_path.startswith("s3://credit-risk/runs/"), drift_path
    drift = json.loads(exec_in("airflow-worker", "python", "-c",
                               "import fsspec, sys; print(fsspec.open(sys.argv[1]).open().read()"
                               ".decode())", drift_path))
    assert drift["status"] == "ok" and drift["champion"] == champion, drift
    assert drift["current_rows"] >= BATCH + 1, drift
    log(f"monitoring: drift report on {drift['current_rows']} decisions, drift={drift['drift']} "
        f"{drift.get('drifted_fields', '')}")

    # 7. The models page of the Airflow UI (the credit_risk plugin on the api-server).
    status, page = airflow("GET", "/credit-risk/")
    assert status == 200 and champion in str(page), (status, str(page)[:2000])
    log("Airflow UI: the models page lists the champion")
    # ... and the monitoring page reads the run folders on the object store.
    status, page = airflow("GET", "/credit-risk/monitoring")
    mon_folder = drift_path.rsplit("/", 2)[-2]
    assert status == 200 and mon_folder in str(page), (status, str(page)[:2000])
    log("Airflow UI: the monitoring page shows that drift report")
    log(f"all checks passed in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
