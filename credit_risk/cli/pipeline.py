"""`credit-risk train`, `generate-data`, `validate` and `drift`: the pipeline's commands.

The training side: these need the pipeline extra (pandas, scikit-learn, GX, Evidently).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from credit_risk.cli.progress import progress
from credit_risk.cli.usage import UsageError
from credit_risk.config import MODELS, Settings
from credit_risk.pipeline.reports import comparison_table


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.datasets import synthetic
    from credit_risk.spec.dataset import load_spec

    spec = load_spec(args.spec or settings.data.spec)
    if spec.generator != "lauki_synthetic":
        raise UsageError(f"dataset {spec.name} has no generator: its tables come from its "
                         "sources")
    seed = settings.data.seed if args.seed is None else args.seed
    tables = synthetic.generate(args.customers or settings.data.n_customers, seed, args.shift)
    if args.applications or args.outcomes:  # files for predict and monitoring, no tables
        if args.applications:
            from credit_risk.pipeline.ingest import assemble

            apps = assemble(spec, tables).drop(columns=[spec.target.column])
            apps.to_csv(args.applications, index=False)
            print(f"applications: {len(apps)} rows -> {args.applications}")
        if args.outcomes:
            outcomes = synthetic.outcomes(tables, seed)
            outcomes.to_csv(args.outcomes, index=False)
            print(f"outcomes: {len(outcomes)} rows ({outcomes['defaulted'].mean():.1%} "
                  f"defaulted) -> {args.outcomes}")
        return 0
    out = Path(args.out) if args.out else settings.data.dir / spec.name
    with progress("writing tables", sum(len(t) for t in tables.values()), "rows") as bar:
        paths = synthetic.write(tables, out, progress=bar.update)
    for name, path in paths.items():
        print(f"{name}: {len(tables[name])} rows -> {path}")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.pipeline import steps as pipeline
    from credit_risk.pipeline.run_paths import RunPaths
    from credit_risk.pipeline.run_reports import ComparableChampion, Comparison, read_report

    if args.models:
        settings = settings.model_copy(update={"models": tuple(args.models.split(","))})
    unknown = [m for m in settings.training.models if m not in MODELS]
    if unknown:  # before any work: a typo in --models or CREDIT_RISK_MODELS
        raise UsageError(f"unknown model {', '.join(map(repr, unknown))} (choose from "
                              f"{', '.join(MODELS)})")
    run_id = args.run_id or datetime.now(UTC).strftime("cli-%Y%m%dT%H%M%SZ")
    with progress("training", len(settings.training.models), "candidates") as bar:
        version = pipeline.run_all(settings, run_id, args.spec, progress=bar.update)
    comparison = read_report(Comparison, RunPaths.for_run(settings, run_id).comparison)
    print(f"Test set: {comparison.test_rows} rows, the same for every candidate.")
    print(comparison_table(comparison.candidates))
    champion = comparison.champion
    if isinstance(champion, ComparableChampion):
        print(f"champion before this run: {champion.version} roc_auc={champion.roc_auc:.4f}")
    status = "promoted to champion" if comparison.approved else (
        "NOT promoted: " + "; ".join(comparison.rejection_reasons))
    print(f"published {version} ({comparison.selected}): {status}")
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.pipeline.ingest import read_tables
    from credit_risk.pipeline.run_paths import RunPaths
    from credit_risk.pipeline.validate import validate_tables
    from credit_risk.spec.dataset import load_spec
    from credit_risk.validation import export_suites

    spec = load_spec(args.spec or settings.data.spec)
    if args.export_suites:
        root, names = export_suites(spec, settings)
        print(f"wrote {len(names)} suites and checkpoints of {spec.name} to {root}")
        return 0
    data_dir = Path(args.data_dir) if args.data_dir else settings.data.dir
    out = Path(args.out) if args.out else RunPaths.for_local_run(
        settings, datetime.now(UTC).strftime("validate-%Y%m%dT%H%M%SZ")).validation
    frames = read_tables(spec, data_dir)
    with progress("validating", None, "tables") as bar:
        report = validate_tables(spec, frames, out, settings, {"data_dir": str(data_dir)},
                                 progress=bar.update)
    print(report.message(), file=sys.stdout if report.success else sys.stderr)
    print(report.summary())
    return 0 if report.success else 1


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.pipeline.monitoring import drift_step

    if args.window_days:
        settings = settings.model_copy(update={"drift_window_days": args.window_days})
    run_id = datetime.now(UTC).strftime("cli-%Y%m%dT%H%M%SZ")
    from credit_risk.pipeline.run_paths import join, monitoring_dir
    from credit_risk.pipeline.run_reports import DriftReport, read_report

    result = read_report(DriftReport, drift_step(settings, run_id))
    print(f"{result.status}; drift: {result.drift}")
    for row in result.psi:
        flag = "DRIFT" if row.psi >= result.psi_threshold else ""
        print(f"  {row.field:<40} PSI {row.psi:.4f} {flag}")
    if result.report:
        print(f"report: {join(monitoring_dir(settings, run_id), result.report)}")
    return 0
