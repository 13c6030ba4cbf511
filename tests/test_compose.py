"""docker-compose.yml and its stand-in override, checked statically: the Compose Specification
schema (check-jsonschema's vendored copy), no default secrets, healthchecks and dependency
conditions, named volumes, ports. `make test-stack` runs the stack for real."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FILES = ["docker-compose.yml", "docker-compose.local.yml"]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
LOCAL = yaml.safe_load((ROOT / "docker-compose.local.yml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
           "airflow-triggerer", "airflow-worker"]
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_compose_files_follow_the_compose_specification():
    binary = Path(sys.executable).parent / "check-jsonschema"
    assert binary.exists(), "check-jsonschema not installed (dev extra)"
    result = subprocess.run([str(binary), "--builtin-schema", "vendor.compose-spec",
                             *[str(ROOT / f) for f in FILES]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_whole_stack_is_there():
    assert set(SERVICES) == {"postgres", "redis", "s3", "airflow-init", "serving", *AIRFLOW}
    for name in ["airflow-init", *AIRFLOW]:
        assert SERVICES[name]["image"] == (
            "${AIRFLOW_IMAGE:-credit-risk-airflow}:${IMAGE_TAG:-latest}")
        assert SERVICES[name]["build"]["target"] == "airflow"
        env = SERVICES[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == (
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["CREDIT_RISK_REGISTRY_URL"].startswith("s3://")
        assert env["CREDIT_RISK_RUNS_DIR"].startswith("s3://")
        assert env["CREDIT_RISK_DECISION_LOG"].startswith("postgresql+psycopg://")
    commands = {name: SERVICES[name]["command"] for name in AIRFLOW}
    assert commands == {
        "airflow-apiserver": ["airflow", "api-server", "--port", "8080"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
        "airflow-worker": ["airflow", "celery", "worker"]}
    serving = SERVICES["serving"]
    assert serving["build"]["target"] == "serving"
    assert serving["environment"]["CREDIT_RISK_REGISTRY_URL"] == (
        SERVICES["airflow-worker"]["environment"]["CREDIT_RISK_REGISTRY_URL"])
    assert serving["environment"]["CREDIT_RISK_DECISION_LOG"].endswith("@postgres:5432/decisions")


def test_init_job_migrates_creates_the_user_bucket_and_demo_data():
    assert SERVICES["airflow-init"]["command"] == ["credit-risk-init"]
    assert SERVICES["airflow-init"]["restart"] == "no"
    script = (ROOT / "docker/airflow-init.sh").read_text()
    env = SERVICES["airflow-init"]["environment"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == (
        "/opt/airflow/auth/passwords.json")  # the airflow-auth volume, read by the api-server
    for step in ("CREATE DATABASE", "airflow db migrate", "AIRFLOW_ADMIN_PASSWORD",
                 "credit-risk decisions migrate", "fs.mkdir(bucket)", "credit-risk generate-data"):
        assert step in script, step
    assert "COPY docker/airflow-init.sh /usr/local/bin/credit-risk-init" in (
        ROOT / "Dockerfile").read_text()


def test_no_secret_has_a_default_and_every_one_is_in_env_example():
    """Secrets come from .env: `${NAME:?...}` (compose refuses to start without it), never
    `${NAME:-default}` nor a literal; .env.example names each one, empty."""
    text = "\n".join((ROOT / f).read_text() for f in FILES)
    secret = re.compile(r"PASSWORD|SECRET|FERNET|API_KEYS|ACCESS_KEY")
    required = set()
    for name, op, _default in VARIABLE.findall(text):
        if secret.search(name):
            assert op in ("", ":?"), f"${{{name}}} has a default"
        if op == ":?":
            required.add(name)
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY",
            "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
            "SERVING_API_KEYS", "SERVING_SECRET_KEY"} <= required
    example = _env_example()
    for name in required:
        assert name in example and example[name] == "", name
    # Every environment value that is a secret is a variable, not a literal.
    for service in SERVICES.values():
        for key, value in (service.get("environment") or {}).items():
            if secret.search(key) and not key.endswith("_FILE"):
                assert "${" in str(value), (key, value)
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_healthchecks_and_dependency_conditions():
    for name in ["postgres", "redis", "s3", *AIRFLOW]:
        assert SERVICES[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    # serving's healthcheck is the image's (HEALTHCHECK on /ready in the Dockerfile).
    assert "HEALTHCHECK" in (ROOT / "Dockerfile").read_text()
    for name in ["airflow-init", "serving", *AIRFLOW]:
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["s3"]["condition"] == "service_healthy"
        if name != "airflow-init":
            assert depends["airflow-init"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW:
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_named_volumes_and_two_ports():
    declared = set(COMPOSE["volumes"])
    used = set()
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert not source.startswith((".", "/")), f"bind mount {volume}"
            used.add(source)
    assert used == declared == {"postgres-data", "redis-data", "s3-data", "airflow-logs",
                                "airflow-data", "airflow-auth", "serving-spool"}
    published = {name: s["ports"] for name, s in SERVICES.items() if "ports" in s}
    assert published == {"airflow-apiserver": ["${AIRFLOW_PORT:-8080}:8080"],
                         "serving": ["${SERVING_PORT:-8000}:8000"]}


def test_official_images_by_default_stand_ins_by_variable_and_override():
    images = {name: SERVICES[name]["image"] for name in ("postgres", "redis", "s3")}
    assert images["postgres"].startswith("${POSTGRES_IMAGE:-postgres:")
    assert images["redis"].startswith("${REDIS_IMAGE:-redis:")
    assert images["s3"].startswith("${S3_IMAGE:-minio/minio:RELEASE.")
    local = LOCAL["services"]
    assert set(local) == {"postgres", "redis", "s3"}
    for name, dockerfile in (("postgres", "docker/postgres.Dockerfile"),
                             ("redis", "docker/redis.Dockerfile"),
                             ("s3", "docker/moto.Dockerfile")):
        assert local[name]["build"]["dockerfile"] == dockerfile
        assert (ROOT / dockerfile).exists()
        assert local[name]["image"].startswith(f"${{{name.upper()}_IMAGE:-credit-risk/")
    # moto listens where MinIO does, so that the endpoint is the same.
    assert local["s3"]["command"][-1] == "9000"
    assert "http://s3:9000" in SERVICES["airflow-worker"]["environment"]["AWS_ENDPOINT_URL_S3"]
