"""A whole training run with its run folder and the registry on S3 (moto's server): the
command line's `credit-risk train` with CREDIT_RISK_RUNS_DIR=s3://... publishes a version, and
every step's output is in the run's folder on S3, found by URL only."""

import json

import fsspec
import pandas as pd
import pytest

from credit_risk.cli import main
from credit_risk.config import Settings
from credit_risk.pipeline import steps as pipeline
from credit_risk.pipeline.run_paths import RunPaths
from credit_risk.pipeline.run_reports import Comparison, SplitRecord, read_report
from credit_risk.registry import Registry
from credit_risk.validation.result import ValidationResult
from tests.conftest import generate_data, small_settings

pytestmark = pytest.mark.slow


def test_a_run_on_s3_publishes_and_keeps_every_step_in_its_folder(s3_url, tmp_path):
    settings = generate_data(small_settings(tmp_path, runs_dir=f"{s3_url}/runs",
                                            registry_url=f"{s3_url}/registry"))
    assert settings.data.runs_dir == f"{s3_url}/runs"  # a URL, not a folded Path
    version = pipeline.run_all(settings, "s3-run")

    registry = Registry(settings.registry.url)
    assert registry.versions() == [version]
    assert registry.alias_version("champion") == version
    manifest = registry.verify(version)
    assert {"comparison.json", "validation.json", "data_docs.zip"} <= set(manifest["files"])
    assert manifest["run"] == "s3-run" and manifest["validation"]["success"]

    run = RunPaths.for_run(settings, "s3-run")
    assert run.root == f"{s3_url}/runs/s3-run"
    fs, root = fsspec.core.url_to_fs(run.root)
    fs.invalidate_cache()
    found = {p[len(root) + 1:] for p in fs.find(root)}
    assert {"raw/snapshot.json", "raw/customers.parquet", "raw/loans.parquet",
            "raw/bureau.parquet", "split/train.parquet", "split/test.parquet",
            "split/split.json", "candidates/logistic_regression.joblib",
            "candidates/xgboost.joblib", "comparison.json", "reliability.png",
            "validation/validation.json", "validation/data_docs/index.html"} <= found, found
    snapshot = json.loads(fs.cat_file(f"{root}/raw/snapshot.json"))
    assert snapshot["fingerprint"] == manifest["data_fingerprint"]
    comparison = read_report(Comparison, run.comparison)
    assert comparison.selected == manifest["model"]
    assert {c.path for c in comparison.candidates} == {
        f"{run.root}/candidates/logistic_regression.joblib",
        f"{run.root}/candidates/xgboost.joblib"}  # what tasks hand on: URLs only
    result = ValidationResult.loads(fs.cat_file(f"{root}/validation/validation.json"), root)
    assert result.success and result.snapshot == f"{run.root}/raw/snapshot.json"
    test = pd.read_parquet(f"{run.root}/split/test.parquet")
    assert len(test) == read_report(SplitRecord, f"{run.root}/split/split.json").test_rows

    # The same run again (a retried DAG run): the snapshot is kept, the version is not
    # published twice.
    assert pipeline.run_all(settings, "s3-run") == version
    assert Registry(settings.registry.url).versions() == [version]


def test_credit_risk_train_with_runs_on_s3(s3_url, tmp_path, monkeypatch, capsys):
    settings = generate_data(small_settings(tmp_path))
    env = {"DATA_DIR": settings.data.dir, "RUNS_DIR": f"{s3_url}/runs",
           "REGISTRY_URL": f"{s3_url}/registry", "N_CUSTOMERS": 3000, "SEARCH_ITERATIONS": 1,
           "CV_FOLDS": 3, "DECISION_LOG": tmp_path / "d.jsonl"}
    for key, value in env.items():
        monkeypatch.setenv(f"CREDIT_RISK_{key}", str(value))
    assert main(["train", "--models", "logistic_regression", "--run-id", "cli-s3"]) == 0
    out = capsys.readouterr().out
    version = Registry(f"{s3_url}/registry").alias_version("champion")
    assert version and version in out
    assert RunPaths.for_run(Settings(), "cli-s3").root == f"{s3_url}/runs/cli-s3"
    fs, root = fsspec.core.url_to_fs(f"{s3_url}/runs/cli-s3")
    assert fs.exists(f"{root}/comparison.json") and fs.exists(f"{root}/raw/snapshot.json")
