from pathlib import Path

import pytest

from credit_risk.config import Settings
from credit_risk.pipeline.run_paths import RunPaths, monitoring_dir


def test_one_layout_of_a_run_folder(tmp_path):
    run = RunPaths.for_run(Settings(runs_dir=tmp_path), "manual__2026-01-01T00:00:00+00:00")
    assert run.root.parent == tmp_path and run.name == "manual__2026-01-01T00_00_00_00_00"
    assert run.snapshot == run.root / "raw" / "snapshot.json"
    assert run.candidate("xgboost") == run.root / "candidates" / "xgboost.joblib"
    assert (run.split, run.validation, run.comparison) == (
        run.root / "split", run.root / "validation", run.root / "comparison.json")


@pytest.mark.parametrize("inside", ["raw/snapshot.json", "split", "candidates/xgboost.joblib",
                                    "comparison.json", "validation/validation.json",
                                    "validation/data_docs/index.html"])
def test_any_path_in_a_run_finds_its_run(tmp_path, inside):
    run = RunPaths(tmp_path / "runs" / "split")  # even a run named like one of its folders
    assert RunPaths.of(str(run.root / inside)) == run


def test_a_path_outside_a_run_is_refused():
    with pytest.raises(ValueError, match="not inside a run folder"):
        RunPaths.of(Path("/tmp/elsewhere/file.csv"))


def test_monitoring_runs_keep_airflow_run_ids(tmp_path):
    run_id = "scheduled__2026-01-01T00:00:00+00:00"
    assert monitoring_dir(Settings(runs_dir=tmp_path), run_id) == tmp_path / "monitoring" / run_id
