"""Data validation gate: Great Expectations suites on a run's raw tables, their references
and the feature table; a JSON result and Data Docs per run; blocking failures stop the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from credit_risk.config import Settings
from credit_risk.pipeline.run_paths import RunPaths, download_dir, is_url, upload_dir
from credit_risk.spec.dataset import DatasetSpec
from credit_risk.validation.report import (
    DataValidationError,
    Outcome,
    Report,
    json_safe,
    outcomes,
    summary_html,
)
from credit_risk.validation.suites import (
    FEATURES,
    Check,
    Overrides,
    Reference,
    Suites,
    build_suites,
    load_overrides,
)

__all__ = ["DataValidationError", "Report", "Suites", "Check", "Overrides", "build_suites",
           "load_overrides", "suites_for", "validate_frames", "validate_snapshot",
           "resolve_gx_dir", "read_tables", "export_suites", "published_files", "RESULT_FILE",
           "DOCS_DIR"]

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
RESULT_FILE = "validation.json"
DOCS_DIR = "data_docs"
RESULTS_DIR = "gx_results"


def resolve_gx_dir(gx_dir: Path) -> Path | None:
    """The GX context folder: as configured, else next to the package (a source checkout)."""
    for candidate in (gx_dir, PROJECT_ROOT / gx_dir):
        if candidate.is_dir():
            return candidate
    log.warning("no Great Expectations folder at %s: suites come from the spec alone", gx_dir)
    return None


def suites_for(spec: DatasetSpec, settings: Settings) -> Suites:
    """The dataset's suites: derived from the spec, tightened by overrides and settings."""
    overrides = load_overrides(resolve_gx_dir(settings.validation.gx_dir), spec.name)
    return build_suites(
        spec, overrides, min_rows=settings.validation.min_rows,
        max_rows=settings.validation.max_rows, null_warning=settings.validation.null_warning,
        severity=dict(settings.validation.severity), strict=settings.validation.strict)


def reference_frame(ref: Reference, frames: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """Child keys next to the matching parent key (null where the parent has none)."""
    child, parent = frames[ref.child], frames[ref.parent]
    if ref.key not in child.columns or ref.key not in parent.columns:
        return None
    keys = child[ref.key]
    return pd.DataFrame({ref.key: keys, ref.parent_column: keys.where(keys.isin(parent[ref.key]))})


def feature_frame(spec: DatasetSpec, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The model's input matrix (one fitted FeatureTransformer), as a named frame."""
    from credit_risk.pipeline.features import FeatureTransformer
    from credit_risk.pipeline.ingest import assemble

    X = assemble(spec, frames).drop(columns=[spec.target.column], errors="ignore")
    transformer = FeatureTransformer(spec).fit(X)
    return pd.DataFrame(transformer.transform(X), columns=transformer.feature_names_out_)


def _statistics(result: Any) -> dict[str, Any]:
    stats = dict(result.statistics)
    return {"success": bool(result.success), **{k: stats[k] for k in (
        "evaluated_expectations", "successful_expectations", "unsuccessful_expectations")}}


def _blocking(found: list[Outcome]) -> bool:
    return any(o.severity == "blocking" for o in found)


def _run_batches(spec: DatasetSpec, suites: Suites, frames: dict[str, pd.DataFrame],
                 checkpoints: dict[str, Any]) -> tuple[dict[str, Any], list[Outcome],
                                                        dict[str, str]]:
    """Raw tables, then references, then the feature table: GX results, failures, not run."""
    from credit_risk.validation import gx_run

    results: dict[str, Any] = {}
    found: list[Outcome] = []
    skipped: dict[str, str] = {}

    def run(batch: str, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> None:
        results[batch] = gx_run.run_checkpoint(checkpoints[batch], frame, params)
        found.extend(outcomes(batch, results[batch]))

    for table in spec.tables:
        run(table, frames[table])
    for ref in suites.references:
        frame = reference_frame(ref, frames)
        if frame is None:
            skipped[ref.batch] = f"{ref.key} is missing from {ref.child} or {ref.parent}"
        else:
            run(ref.batch, frame)
    try:
        features = feature_frame(spec, frames)
    except (KeyError, ValueError, TypeError) as exc:
        if _blocking(found):
            skipped[FEATURES] = f"the feature table cannot be built from these tables: {exc}"
        else:
            found.append(Outcome(f"{FEATURES}.table.build", FEATURES, None, "build", "",
                                 "a feature table", "blocking", "spec",
                                 f"it cannot be built: {exc}", evaluated=False))
    else:
        run(FEATURES, features, {"base_rows": len(frames[spec.base])})
    return results, found, skipped


def validate_frames(spec: DatasetSpec, frames: dict[str, pd.DataFrame], out_dir: Path,
                    settings: Settings, info: dict[str, Any] | None = None) -> Report:
    """Validate the tables of a dataset; write the result and Data Docs to out_dir."""
    from credit_risk.validation import gx_run

    started = time.perf_counter()
    out_dir = Path(out_dir).absolute()  # GX's Data Docs store refuses a relative folder
    suites = suites_for(spec, settings)
    missing = sorted(set(spec.tables) - set(frames))
    if missing:
        raise DataValidationError(f"dataset {spec.name!r}: tables missing: {missing}")
    work = out_dir.with_name(f".{out_dir.name}-{uuid.uuid4().hex[:8]}")
    try:
        context = gx_run.ephemeral_context(work / DOCS_DIR)
        checkpoints = gx_run.register(context, suites)
        results, found, skipped = _run_batches(spec, suites, frames, checkpoints)
        docs = gx_run.build_docs(context, work / DOCS_DIR)
        report = Report(
            dataset=spec.name,
            failures=[o for o in found if o.severity == "blocking"],
            warnings=[o for o in found if o.severity != "blocking"],
            skipped=skipped,
            statistics={b: _statistics(r) for b, r in results.items()},
            path=out_dir / RESULT_FILE, docs=out_dir / DOCS_DIR / docs.name,
        )
        gx_run.add_summary(work / DOCS_DIR, summary_html(
            report, gx_run.pages(work / DOCS_DIR, spec.name, list(results))))
        _write(work, report, results, suites, info or {}, time.perf_counter() - started)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("%s (%.1f s); result %s", report.summary(), time.perf_counter() - started,
             report.path)
    for warning in report.warnings:
        log.warning("data validation warning: %s", warning.line())
    return report


def _write(work: Path, report: Report, results: dict[str, Any], suites: Suites,
           info: dict[str, Any], seconds: float) -> None:
    from credit_risk.validation.gx_run import suite_name

    (work / RESULTS_DIR).mkdir(parents=True, exist_ok=True)
    files = {}
    for batch, result in results.items():
        name = f"{suite_name(suites.dataset, batch)}.json"
        (work / RESULTS_DIR / name).write_text(
            json.dumps(json_safe(result.to_json_dict()), indent=1, default=str))
        files[batch] = f"{RESULTS_DIR}/{name}"
    body = {
        "dataset": report.dataset,
        "success": report.success,
        "validated_at": datetime.now(UTC).isoformat(),
        **info,
        "summary": report.summary(),
        "blocking_failures": json_safe([dataclasses.asdict(o) for o in report.failures]),
        "warnings": json_safe([dataclasses.asdict(o) for o in report.warnings]),
        "not_run": report.skipped,
        "statistics": report.statistics,
        "checks": {b: [{"id": c.id, "type": c.type, "expected": c.text,
                        "severity": c.severity, "source": c.source} for c in checks]
                   for b, checks in suites.checks.items()},
        "gx_results": files,
        "data_docs": f"{DOCS_DIR}/index.html",
        "great_expectations_version": _gx_version(),
        "seconds": round(seconds, 2),
    }
    (work / RESULT_FILE).write_text(json.dumps(body, indent=2, default=str, allow_nan=False))


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great-expectations")


def validate_snapshot(spec: DatasetSpec, snapshot: Path | str, settings: Settings,
                      out_dir: Path | None = None) -> Report:
    """Validate a run's snapshot; the result goes to <run>/validation/ unless out_dir says.
    A run folder on an object store: GX writes into a local temporary folder, which is then
    uploaded to <run>/validation/ (the report's path and docs are URLs then)."""
    from credit_risk.pipeline.ingest import load_snapshot

    manifest, frames = load_snapshot(snapshot)
    info = {"snapshot": str(snapshot), "data_fingerprint": manifest["fingerprint"],
            "tables": {n: t["rows"] for n, t in manifest["tables"].items()}}
    target = out_dir or RunPaths.of(snapshot).validation
    if not is_url(target):
        return validate_frames(spec, frames, Path(target), settings, info)
    url = str(target)
    with tempfile.TemporaryDirectory(prefix="credit-risk-validation-") as tmp:
        local = Path(tmp) / "validation"
        report = validate_frames(spec, frames, local, settings, info)
        upload_dir(local, url)
    docs = f"{url}/{Path(report.docs).relative_to(local).as_posix()}" if report.docs else None
    return dataclasses.replace(report, path=f"{url}/{RESULT_FILE}", docs=docs)


def published_files(run: Path | str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The run's passing validation result and its Data Docs (zipped) for the registry,
    and a summary for the manifest; refuse a run without a passing result. A run folder on
    an object store: its validation folder is read from a local copy."""
    if is_url(run):
        with tempfile.TemporaryDirectory(prefix="credit-risk-validation-") as tmp:
            download_dir(str(RunPaths(str(run)).validation), Path(tmp) / "run" / "validation")
            files, summary = _published_files(Path(tmp) / "run", run)
        return files, summary
    return _published_files(Path(run), run)


def _published_files(run: Path, name: Path | str) -> tuple[dict[str, bytes], dict[str, Any]]:
    from credit_risk.validation.gx_run import zip_dir

    folder = RunPaths(run).validation
    path = folder / RESULT_FILE
    if not path.is_file():
        shown = path if isinstance(name, Path) else f"{name}/validation/{RESULT_FILE}"
        raise DataValidationError(f"run {name} has no validation result ({shown}): validate "
                                  "first")
    result = json.loads(path.read_text())
    if not result["success"]:
        raise DataValidationError(f"run {name} failed data validation: {result['summary']}")
    files = {RESULT_FILE: path.read_bytes()}
    if (folder / DOCS_DIR).is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            files["data_docs.zip"] = zip_dir(folder / DOCS_DIR, Path(tmp) / "docs.zip").read_bytes()
    summary = {"success": True, "summary": result["summary"],
               "validated_at": result["validated_at"],
               "warnings": [w["id"] for w in result["warnings"]], "files": sorted(files)}
    return files, summary


def read_tables(spec: DatasetSpec, data_dir: Path) -> dict[str, pd.DataFrame]:
    """The spec's source tables from DATA_DIR/<dataset>/ or, failing that, from data_dir."""
    from credit_risk.pipeline.ingest import read_table, source_url

    first = next(iter(spec.tables.values()))
    if (isinstance(first.source, str) and not Path(source_url(first, spec, data_dir)).exists()
            and (data_dir / first.source).exists()):
        tables = {n: t.model_copy(update={"source": str((data_dir / t.source).resolve())})
                  if isinstance(t.source, str) else t for n, t in spec.tables.items()}
        spec = spec.model_copy(update={"tables": tables})
    return {name: read_table(table, spec, data_dir) for name, table in spec.tables.items()}


def export_suites(spec: DatasetSpec, settings: Settings) -> tuple[Path, list[str]]:
    """Write the spec's suites (without run-time severity settings) into the GX folder."""
    from credit_risk.validation.gx_run import export_file_context

    root = resolve_gx_dir(settings.validation.gx_dir) or settings.validation.gx_dir
    plain = settings.model_copy(update={"validation_severity": {}, "validation_strict": False})
    return root, export_file_context(suites_for(spec, plain), root)
