"""Shared fixtures: a small generated dataset and a small trained model in a temp registry."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports Airflow: a private AIRFLOW_HOME, no examples, no telemetry.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="credit-risk-airflow-"))
os.environ.update(
    AIRFLOW_HOME=str(_AIRFLOW_HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(Path(__file__).parent.parent / "dags"),
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    GX_ANALYTICS_ENABLED="false",
    DO_NOT_TRACK="1",
    SCARF_ANALYTICS="false",
    OMP_NUM_THREADS="1",
)

import pytest  # noqa: E402

from credit_risk.config import Settings  # noqa: E402
from credit_risk.datasets import synthetic  # noqa: E402
from credit_risk.spec.dataset import load_spec  # noqa: E402
from tests import tiers  # noqa: E402

ROOT = Path(__file__).parent.parent
GUARD = tiers.UnitGuard()


def pytest_configure(config):
    GUARD.install()


def pytest_collection_modifyitems(items):
    """Each test's tier: unit, integration or slow (tests/tiers.py)."""
    tiers.assign(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with GUARD.watching(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with GUARD.watching(item):
        return (yield)


def small_settings(base: Path, **overrides) -> Settings:
    """Settings for fast runs on a few thousand rows, everything under `base`."""
    values = dict(
        data_dir=base / "data", runs_dir=base / "runs", registry_url=str(base / "registry"),
        decision_log=base / "decisions.jsonl", n_customers=3000, cv_folds=3,
        search_iterations=1, models=("logistic_regression", "xgboost"), reload_interval_s=0,
    )
    values.update(overrides)
    return Settings(**values)


def generate_data(settings: Settings) -> Settings:
    """Write the synthetic source tables: an explicit step, ingest never generates data."""
    synthetic.ensure_for(settings)
    return settings


S3_BUCKET = "credit-risk-test"


@pytest.fixture(scope="session")
def s3_server():
    """A local S3-compatible server (moto in server mode on a free loopback port) with one
    bucket: yields (endpoint URL, bucket). The endpoint and dummy credentials are set in the
    environment (AWS_ENDPOINT_URL_S3 etc.), as a deployment against MinIO would set them, so
    s3fs, pandas and subprocesses started by the test (Airflow workers, gunicorn) all use it."""
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in [*env, "AWS_SESSION_TOKEN", "AWS_PROFILE"]}
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()  # none made before the endpoint was set
    try:
        s3fs.S3FileSystem().mkdir(S3_BUCKET)
        yield endpoint, S3_BUCKET
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_url(s3_server, request):
    """A fresh prefix in the test bucket for one test: ``s3://<bucket>/<test>-<random>``."""
    import uuid

    _, bucket = s3_server
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"s3://{bucket}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def spec():
    return load_spec("lauki_synthetic")


@pytest.fixture(scope="session")
def tables():
    return synthetic.generate(3000, seed=7)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A registry with one champion trained by the real pipeline on 3,000 customers."""
    from credit_risk.pipeline import steps as pipeline

    base = tmp_path_factory.mktemp("trained")
    settings = generate_data(small_settings(base))
    version = pipeline.run_all(settings, "fixture-run")
    return settings, version


@pytest.fixture
def trained_copy(trained, tmp_path):
    """The `trained` fixture's registry and runs, copied for a test that changes them (a new
    version, an alias, a corrupted file): the settings pointing at the copy, and the version."""
    import shutil

    settings, version = trained
    shutil.copytree(settings.registry.url, tmp_path / "registry")
    shutil.copytree(settings.data.runs_dir, tmp_path / "runs")
    return settings.model_copy(update={
        "registry_url": str(tmp_path / "registry"), "runs_dir": tmp_path / "runs",
        "decision_log": tmp_path / "decisions.jsonl"}), version


def republish(registry, version: str, edit=None) -> str:
    """A new version with the files and metadata of `version` (published, not promoted);
    `edit(name, data)`, when given, returns what each file holds in the new version."""
    manifest = registry.manifest(version)
    files = {n: registry.read_file(version, n) for n in manifest["files"]}
    if edit is not None:
        files = {n: edit(n, data) for n, data in files.items()}
    written = ("version", "created_at", "files", "sizes", "signature")  # by the registry
    meta = {k: v for k, v in manifest.items() if k not in written}
    return registry.publish(files, meta)
