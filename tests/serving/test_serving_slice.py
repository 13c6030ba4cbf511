"""The serving slice in a fresh environment built from the serving and batch extras alone.

`pip install -c constraints.txt '.[serving,batch]'` into a new virtualenv (once per session)
from the files the serving image copies (the Dockerfile's COPY lines; pip's cache makes it
quick), then: the training stack is not there, the serving app scores a model the pipeline
published, and `credit-risk predict` scores a CSV. When the environment cannot be built the
tests fail: they never skip.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from credit_risk.registry import Registry
from tests.serving.image_slice import copy_serving_slice

ROOT = Path(__file__).parents[2]
TRAINING_ONLY = {"pandas": "pandas", "sklearn": "scikit-learn", "imblearn": "imbalanced-learn",
                 "joblib": "joblib"}


@pytest.fixture(scope="session")
def slice_env(tmp_path_factory) -> Path:
    """A fresh virtualenv with the project installed from its serving extra alone."""
    base = tmp_path_factory.mktemp("serving-slice")
    src = base / "src"
    copy_serving_slice(src)  # the files the serving image holds, nothing else
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, src / name)
    env_dir = base / "venv"
    started = time.monotonic()
    # No pip inside the new env: the test's own pip installs into it (`pip --python`).
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], "create the virtualenv")
    _run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
          "--quiet", "--disable-pip-version-check", "--no-compile",
          "-c", str(src / "constraints.txt"), f"{src}[serving,batch]"],
         "install the serving and batch extras")
    print(f"serving-slice env built in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return env_dir


def _run(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"cannot {what} (exit {result.returncode}): {' '.join(cmd)}\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _env(settings, tmp_path: Path) -> dict[str, str]:
    """Only what the slice needs: no PYTHONPATH, no inherited CREDIT_RISK_* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CREDIT_RISK_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(CREDIT_RISK_REGISTRY_URL=str(settings.registry.url),
               CREDIT_RISK_DECISION_LOG=str(tmp_path / "decisions.jsonl"),
               CREDIT_RISK_RELOAD_INTERVAL_S="0")
    return env


def test_the_serving_extra_installs_no_training_stack(slice_env, tmp_path):
    script = textwrap.dedent(f"""
        import importlib.metadata as md, importlib.util, json
        found = {{}}
        for module, dist in {TRAINING_ONLY!r}.items():
            try:
                found[dist] = md.version(dist)
            except md.PackageNotFoundError:
                pass
            if importlib.util.find_spec(module) is not None:
                found[module] = "importable"
        print(json.dumps(found))
    """)
    out = _run([str(slice_env / "bin" / "python"), "-c", script], "inspect the env",
               cwd=tmp_path)
    assert json.loads(out.stdout) == {}
    # ...while the serving stack is there.
    _run([str(slice_env / "bin" / "python"), "-c", "import flask, gunicorn, xgboost, numpy"],
         "import the serving stack", cwd=tmp_path)


def test_the_serving_app_scores_a_published_model(slice_env, trained, tmp_path):
    settings, version = trained
    script = textwrap.dedent(f"""
        import json, sys
        import serving
        from serving import create_app

        assert serving.__file__.startswith({str(slice_env)!r}), serving.__file__
        client = create_app(watch=False).test_client()
        assert client.get("/ready").status_code == 200
        fields = client.get("/api/v1/model").json["inputs"]
        application = {{f["name"]: f["default"] for f in fields}}
        response = client.post("/api/v1/predict", json=application)
        assert response.status_code == 200, response.get_data(as_text=True)
        bad = client.post("/api/v1/predict", json={{**application, fields[0]["name"]: "x"}})
        assert bad.status_code == 422, bad.status_code
        loaded = sorted(m for m in {sorted(TRAINING_ONLY)!r} if m in sys.modules)
        print(json.dumps({{"result": response.json, "training_modules": loaded}}))
    """)
    out = _run([str(slice_env / "bin" / "python"), "-c", script], "score in the slice",
               cwd=tmp_path, env=_env(settings, tmp_path))
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["training_modules"] == []
    result = answer["result"]
    assert result["model_version"] == version
    assert 0.0 < result["probability_of_default"] < 1.0
    assert result["risk"] in ("High", "Low") and 300 <= result["credit_score"] <= 900
    logged = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert len(logged) == 1 and logged[0]["model_version"] == version


def test_credit_risk_predict_and_models_run_in_the_slice(slice_env, trained, tmp_path):
    settings, version = trained
    fields = Registry(settings.registry.url).manifest(version)["inputs"]
    typical = {f["name"]: "" if f["default"] is None else f["default"] for f in fields}
    numeric = next(f for f in fields if f["type"] != "category")
    with (tmp_path / "apps.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["ref", *typical])
        writer.writeheader()
        writer.writerow({"ref": "a", **typical})
        writer.writerow({"ref": "b", **typical, numeric["name"]: "not a number"})
    env = _env(settings, tmp_path)
    cli = str(slice_env / "bin" / "credit-risk")
    done = subprocess.run([cli, "predict", "apps.csv", "-o", "out.csv", "--log"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 3, done.stderr  # some rows not scored
    assert (tmp_path / "out.csv.errors.csv").read_text().splitlines()[1].startswith("2,")
    rows = list(csv.DictReader((tmp_path / "out.csv").open(newline="")))
    assert [r["ref"] for r in rows] == ["a", "b"]
    assert rows[0]["model_version"] == version and float(rows[0]["probability_of_default"]) > 0
    assert rows[0]["error"] == "" and rows[1]["probability_of_default"] == ""
    assert rows[1]["error"] == f"{numeric['name']} must be a number"
    assert len((tmp_path / "decisions.jsonl").read_text().splitlines()) == 1

    listing = _run([cli, "models", "list"], "run credit-risk models list", cwd=tmp_path,
                   env=env).stdout
    assert version in listing and "champion" in listing
    # A pipeline command says what is missing instead of pretending to work.
    train = subprocess.run([cli, "train"], capture_output=True, text=True, cwd=tmp_path,
                           env=env)
    assert train.returncode == 1 and "train needs the pipeline extra" in train.stderr
    assert "Traceback" not in train.stderr
