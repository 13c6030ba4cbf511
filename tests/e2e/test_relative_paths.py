"""The embedded default's folders are relative (var/runs, var/registry, var/data): a whole run
works from the project folder with them, as `make run` and `credit-risk train` use them."""

from pathlib import Path

import pytest

from credit_risk.pipeline import steps as pipeline
from credit_risk.registry import Registry
from tests.conftest import generate_data, small_settings

pytestmark = pytest.mark.slow


def test_a_run_with_relative_folders_publishes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = generate_data(small_settings(Path("var"), models=("logistic_regression",),
                                            n_customers=2000))
    assert not settings.data.runs_dir.is_absolute()  # as the defaults are
    version = pipeline.run_all(settings, "relative-run")
    assert Registry("var/registry").alias_version("champion") == version
    assert (tmp_path / "var" / "runs" / "relative-run" / "validation" / "validation.json").exists()
