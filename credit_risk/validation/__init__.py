"""Data validation gate: Great Expectations suites on a dataset's raw tables, their references
and the feature table; a JSON result and Data Docs in a local folder; blocking failures stop
the run. The pipeline supplies the tables, the feature table builder and the run's folders.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from credit_risk.config import Settings
from credit_risk.report_model import ReportError
from credit_risk.spec.dataset import DatasetSpec
from credit_risk.validation.report import (
    DataValidationError,
    Outcome,
    Report,
    json_safe,
    outcomes,
    summary_html,
)
from credit_risk.validation.result import ValidationResult
from credit_risk.validation.suites import (
    FEATURES,
    Check,
    Overrides,
    Reference,
    Suites,
    build_suites,
    load_overrides,
)

__all__ = ["DataValidationError", "Report", "ValidationResult", "Suites", "Check", "Overrides",
           "FeatureBuilder", "build_suites", "load_overrides", "suites_for", "validate_frames",
           "resolve_gx_dir", "export_suites", "published_files", "RESULT_FILE", "DOCS_DIR"]

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
RESULT_FILE = "validation.json"
DOCS_DIR = "data_docs"
RESULTS_DIR = "gx_results"

# Builds the model's input matrix (a named frame) from a dataset's tables: the pipeline's.
FeatureBuilder = Callable[[DatasetSpec, dict[str, pd.DataFrame]], pd.DataFrame]


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


def _statistics(result: Any) -> dict[str, Any]:
    stats = dict(result.statistics)
    return {"success": bool(result.success), **{k: stats[k] for k in (
        "evaluated_expectations", "successful_expectations", "unsuccessful_expectations")}}


def _blocking(found: list[Outcome]) -> bool:
    return any(o.severity == "blocking" for o in found)


def _run_batches(spec: DatasetSpec, suites: Suites, frames: dict[str, pd.DataFrame],
                 checkpoints: dict[str, Any], features: FeatureBuilder,
                 progress: Callable[[int, int | None], None] | None = None
                 ) -> tuple[dict[str, Any], list[Outcome], dict[str, str]]:
    """Raw tables, then references, then the feature table: GX results, failures, not run."""
    from credit_risk.validation import gx_run

    results: dict[str, Any] = {}
    found: list[Outcome] = []
    skipped: dict[str, str] = {}
    total = len(spec.tables) + len(suites.references) + 1
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    def run(batch: str, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> None:
        results[batch] = gx_run.run_checkpoint(checkpoints[batch], frame, params)
        found.extend(outcomes(batch, results[batch]))
        tick()

    for table in spec.tables:
        run(table, frames[table])
    for ref in suites.references:
        frame = reference_frame(ref, frames)
        if frame is None:
            skipped[ref.batch] = f"{ref.key} is missing from {ref.child} or {ref.parent}"
            tick()
        else:
            run(ref.batch, frame)
    try:
        table = features(spec, frames)
    except (KeyError, ValueError, TypeError) as exc:
        if _blocking(found):
            skipped[FEATURES] = f"the feature table cannot be built from these tables: {exc}"
        else:
            found.append(Outcome(id=f"{FEATURES}.table.build", batch=FEATURES, column=None,
                                 check="build", type="", expected="a feature table",
                                 severity="blocking", source="spec",
                                 observed=f"it cannot be built: {exc}", evaluated=False))
        tick()
    else:
        run(FEATURES, table, {"base_rows": len(frames[spec.base])})
    return results, found, skipped


def validate_frames(spec: DatasetSpec, frames: dict[str, pd.DataFrame], out_dir: Path,
                    settings: Settings, info: dict[str, Any] | None = None, *,
                    features: FeatureBuilder,
                    progress: Callable[[int, int | None], None] | None = None) -> Report:
    """Validate the tables of a dataset and the feature table `features` builds from them;
    write the result and Data Docs to the local folder out_dir; `progress(done, total)` is
    told each table (raw, reference and feature batch) checked."""
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
        results, found, skipped = _run_batches(spec, suites, frames, checkpoints, features,
                                               progress)
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
    result = ValidationResult(
        dataset=report.dataset,
        success=report.success,
        validated_at=datetime.now(UTC).isoformat(),
        **info,
        summary=report.summary(),
        blocking_failures=json_safe([o.model_dump() for o in report.failures]),
        warnings=json_safe([o.model_dump() for o in report.warnings]),
        not_run=report.skipped,
        statistics=report.statistics,
        checks={b: [{"id": c.id, "type": c.type, "expected": c.text,
                     "severity": c.severity, "source": c.source} for c in checks]
                for b, checks in suites.checks.items()},
        gx_results=files,
        data_docs=f"{DOCS_DIR}/index.html",
        great_expectations_version=_gx_version(),
        seconds=round(seconds, 2),
    )
    (work / RESULT_FILE).write_text(result.dumps())


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great-expectations")


def published_files(folder: Path, run: Path | str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """A run's passing validation result and its Data Docs (zipped), read from its local
    validation folder, for the registry, and a summary for the manifest; refuse a run without
    a passing result."""
    import tempfile

    from credit_risk.validation.gx_run import zip_dir

    path = folder / RESULT_FILE
    if not path.is_file():
        shown = path if isinstance(run, Path) else f"{run}/validation/{RESULT_FILE}"
        raise DataValidationError(f"run {run} has no validation result ({shown}): validate "
                                  "first")
    try:
        result = ValidationResult.read(path)
    except ReportError as exc:
        raise DataValidationError(f"run {run}: {exc}") from None
    if not result.success:
        raise DataValidationError(f"run {run} failed data validation: {result.summary}")
    files = {RESULT_FILE: path.read_bytes()}
    if (folder / DOCS_DIR).is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            files["data_docs.zip"] = zip_dir(folder / DOCS_DIR, Path(tmp) / "docs.zip").read_bytes()
    summary = {"success": True, "summary": result.summary, "validated_at": result.validated_at,
               "warnings": [w.id for w in result.warnings], "files": sorted(files)}
    return files, summary


def export_suites(spec: DatasetSpec, settings: Settings) -> tuple[Path, list[str]]:
    """Write the spec's suites (without run-time severity settings) into the GX folder."""
    from credit_risk.validation.gx_run import export_file_context

    root = resolve_gx_dir(settings.validation.gx_dir) or settings.validation.gx_dir
    plain = settings.model_copy(update={"validation_severity": {}, "validation_strict": False})
    return root, export_file_context(suites_for(spec, plain), root)
