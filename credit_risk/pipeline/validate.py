"""The validate step's side of a run folder: the GX gate on a run's snapshot, written to
<run>/validation/ (uploaded when the run folder is on an object store), and the validation
files a published version carries."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from credit_risk.config import Settings
from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.pipeline.ingest import assemble, load_snapshot
from credit_risk.pipeline.run_paths import RunPaths, download_dir, is_url, upload_dir
from credit_risk.spec.dataset import DatasetSpec
from credit_risk.validation import RESULT_FILE, Report, published_files, validate_frames


def feature_table(spec: DatasetSpec, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The model's input matrix (one fitted FeatureTransformer), as a named frame."""
    X = assemble(spec, frames).drop(columns=[spec.target.column], errors="ignore")
    transformer = FeatureTransformer(spec).fit(X)
    return pd.DataFrame(transformer.transform(X), columns=transformer.feature_names_out_)


def validate_tables(spec: DatasetSpec, frames: dict[str, pd.DataFrame], out_dir: Path,
                    settings: Settings, info: dict[str, Any] | None = None,
                    progress: Callable[[int, int | None], None] | None = None) -> Report:
    """Validate a dataset's tables and their feature table; the result goes to out_dir.
    `progress(done, total)` is told each table validated."""
    return validate_frames(spec, frames, out_dir, settings, info, features=feature_table,
                           progress=progress)


def validate_snapshot(spec: DatasetSpec, snapshot: Path | str, settings: Settings,
                      out_dir: Path | None = None) -> Report:
    """Validate a run's snapshot; the result goes to <run>/validation/ unless out_dir says.
    A run folder on an object store: GX writes into a local temporary folder, which is then
    uploaded to <run>/validation/ (the report's path and docs are URLs then)."""
    manifest, frames = load_snapshot(snapshot)
    info = {"snapshot": str(snapshot), "data_fingerprint": manifest["fingerprint"],
            "tables": {n: t["rows"] for n, t in manifest["tables"].items()}}
    target = out_dir or RunPaths.of(snapshot).validation
    if not is_url(target):
        return validate_tables(spec, frames, Path(target), settings, info)
    url = str(target)
    with tempfile.TemporaryDirectory(prefix="credit-risk-validation-") as tmp:
        local = Path(tmp) / "validation"
        report = validate_tables(spec, frames, local, settings, info)
        upload_dir(local, url)
    docs = f"{url}/{Path(report.docs).relative_to(local).as_posix()}" if report.docs else None
    return dataclasses.replace(report, path=f"{url}/{RESULT_FILE}", docs=docs)


def run_validation_files(run: Path | str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The run's passing validation result and Data Docs for the registry, and a summary for
    the manifest; refuse a run without a passing result. A run folder on an object store: its
    validation folder is read from a local copy."""
    if is_url(run):
        with tempfile.TemporaryDirectory(prefix="credit-risk-validation-") as tmp:
            local = Path(tmp) / "run" / "validation"
            download_dir(str(RunPaths(str(run)).validation), local)
            return published_files(local, run)
    return published_files(Path(RunPaths(Path(run)).validation), Path(run))
