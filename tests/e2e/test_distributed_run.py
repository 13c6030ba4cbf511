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

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest

from credit_risk.pipeline.run_paths import RunPaths
from tests.conftest import small_settings
from tests.e2e import celery_cluster as harness

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
DAG_ID = "credit_risk_training"
MODELS = ["logistic_regression", "xgboost"]
RUN_TIMEOUT_S = 300


# -- the servers: a fresh PostgreSQL database, a dedicated Redis DB (a missing server fails) --

def _or_fail(context):
    try:
        with context as value:
            yield value
    except harness.ServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def metadata_db():
    yield from _or_fail(harness.metadata_db())


@pytest.fixture
def broker():
    yield from _or_fail(harness.broker())


def _settings_env(settings, models: list[str]) -> dict[str, str]:
    """The project's settings as the CREDIT_RISK_* environment every Airflow process gets."""
    return {
        "CREDIT_RISK_DATA_DIR": str(settings.data.dir),
        "CREDIT_RISK_RUNS_DIR": str(settings.data.runs_dir),
        "CREDIT_RISK_REGISTRY_URL": str(settings.registry.url),
        "CREDIT_RISK_GX_DIR": str(ROOT / "great_expectations"),
        "CREDIT_RISK_DECISION_LOG": str(settings.decisions.url),
        "CREDIT_RISK_N_CUSTOMERS": str(settings.data.n_customers),
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
    settings, store_env = store
    env = harness.airflow_env(
        home, harness.free_port(), metadata_db, broker, ROOT / "dags",
        {"AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
         "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2", "PYTHONPATH": str(ROOT),
         **_settings_env(settings, MODELS), **store_env})

    # The source tables first: ingest reads them, it never generates data.
    generate = subprocess.run([str(Path(sys.executable).parent / "credit-risk"), "generate-data",
                               "--customers", str(settings.data.n_customers)],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert generate.returncode == 0, generate.stderr[-3000:]
    workers = {f"credit-risk-test-{secrets.token_hex(3)}@%h": 2}
    with harness.running(home, env, workers) as cluster:
        yield cluster, settings


def test_training_dag_runs_on_celery_workers_and_its_model_serves(cluster):
    started = time.monotonic()
    cluster, settings = cluster
    run_id = cluster.trigger(DAG_ID, {"models": MODELS})
    run_path = cluster.run_path(DAG_ID, run_id)
    state = cluster.wait_for_run(DAG_ID, run_id, RUN_TIMEOUT_S)
    assert state == "success", cluster.task_report(DAG_ID, run_id)
    ran = time.monotonic() - started

    # Every task ran on the Celery worker (the executor recorded its hostname and queue).
    tis = {(ti["task_id"], ti["map_index"]): ti
           for ti in cluster.task_instances(DAG_ID, run_id)}
    assert {ti["hostname"].endswith("-celery-worker") for ti in tis.values()} == {True}
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
    runs = f"{RunPaths.for_run(settings, run_id).root}/"
    assert runs.startswith("s3://")
    assert {k: v for k, v in xcom.items() if isinstance(v, str) and k[0] != "publish"} == {
        ("ingest", -1): f"{runs}raw/snapshot.json",
        ("validate", -1): f"{runs}validation/validation.json",
        ("prepare", -1): f"{runs}split", ("compare", -1): f"{runs}comparison.json",
        ("train", 0): f"{runs}candidates/logistic_regression.joblib",
        ("train", 1): f"{runs}candidates/xgboost.joblib"}
    # Nothing was written to local folders but the source tables and Airflow's own.
    assert sorted(p.name for p in settings.data.dir.parent.iterdir()) == ["airflow-home", "data"]

    # The model was published to the registry, and serving pointed at it scores with it.
    from credit_risk.registry import Registry
    from serving import create_app

    registry = Registry(settings.registry.url)
    champion = registry.alias_version("champion")
    assert champion and registry.versions() == [champion] and xcom["publish", -1] == champion
    fs, root = fsspec.core.url_to_fs(settings.registry.url)
    assert fs.protocol[0] == "s3" and fs.isfile(f"{root}/models/{champion}/manifest.json")
    manifest = registry.verify(champion)
    assert {r["model"] for r in manifest["comparison"]} == set(MODELS)
    client = create_app(settings, watch=False).test_client()
    application = {f["name"]: f["default"] for f in manifest["inputs"]}
    r = client.post("/api/v1/predict", json=application)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json["model_version"] == champion and 0 <= r.json["probability_of_default"] <= 1
    print(f"\ndistributed run: triggered to success in {ran:.0f}s")
