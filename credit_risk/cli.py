"""The `credit-risk` console script: the same functions the DAGs call."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from credit_risk.config import Settings
from credit_risk.pipeline.reports import comparison_table, text_table

log = logging.getLogger("credit_risk")


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.pipeline import synthetic
    from credit_risk.spec.dataset import load_spec

    spec = load_spec(args.spec or settings.dataset_spec)
    if spec.generator != "lauki_synthetic":
        print(f"dataset {spec.name} has no generator", file=sys.stderr)
        return 2
    seed = settings.data_seed if args.seed is None else args.seed
    tables = synthetic.generate(args.customers or settings.n_customers, seed, args.shift)
    if args.applications:
        from credit_risk.pipeline.ingest import assemble

        apps = assemble(spec, tables).drop(columns=[spec.target.column])
        apps.to_csv(args.applications, index=False)
        print(f"applications: {len(apps)} rows -> {args.applications}")
        return 0
    out = Path(args.out) if args.out else settings.data_dir / spec.name
    for name, path in synthetic.write(tables, out).items():
        print(f"{name}: {len(tables[name])} rows -> {path}")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.pipeline import steps as pipeline
    from credit_risk.registry.store import Registry

    if args.models:
        settings = settings.model_copy(update={"models": tuple(args.models.split(","))})
    run_id = args.run_id or datetime.now(UTC).strftime("cli-%Y%m%dT%H%M%SZ")
    version = pipeline.run_all(settings, run_id, args.spec)
    manifest = Registry.from_settings(settings).manifest(version)
    print(f"Test set: {manifest['metrics']['n']} rows, the same for every candidate.")
    print(comparison_table(manifest["comparison"]))
    champion = manifest["champion_at_training"]
    if champion and champion["comparable"]:
        print(f"champion before this run: {champion['version']} roc_auc={champion['roc_auc']:.4f}")
    status = "promoted to champion" if manifest["approved"] else (
        "NOT promoted: " + "; ".join(manifest["rejection_reasons"]))
    print(f"published {version} ({manifest['model']}): {status}")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.registry.store import Registry

    if args.models_cmd == "verify":
        return _verify(args, settings)
    registry = Registry.from_settings(settings)
    if args.models_cmd == "list":
        champion = registry.alias_version("champion")
        previous = registry.alias_version("previous")
        rows = []
        for v in registry.versions():
            m = registry.manifest(v)
            alias = "champion" if v == champion else "previous" if v == previous else ""
            rows.append({"version": v, "dataset": m["dataset"], "model": m["model"],
                         "roc_auc": m["metrics"]["roc_auc"], "status": m.get("status"),
                         "alias": alias})
        if not rows:
            print(f"no models in {settings.registry_url}")
            return 0
        print(text_table(rows, ["version", "dataset", "model", "roc_auc", "status", "alias"]))
    elif args.models_cmd == "show":
        manifest = registry.manifest(args.version)
        print(json.dumps({k: v for k, v in manifest.items() if k != "spec"}, indent=2))
    elif args.models_cmd == "promote":  # verifies checksums and signature first
        registry.promote(args.version, args.reason, by=args.by)
        print(f"champion is now {args.version}")
    elif args.models_cmd == "rollback":
        version = registry.rollback(args.reason, by=args.by)
        print(f"rolled back: champion is now {version}")
    elif args.models_cmd == "history":
        for rec in registry.history():
            print(f"{rec['set_at']}  {rec['alias']:<8} -> {rec['version']}  by {rec['by']}: "
                  f"{rec['reason']}")
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    """Every file's SHA-256 and the manifest's signature; 0 when both hold, else 1."""
    from credit_risk.registry.store import Registry, RegistryError

    if args.trusted_key:
        settings = settings.model_copy(update={"trusted_keys": tuple(args.trusted_key)})
    registry = Registry.from_settings(settings)
    try:
        manifest = registry.verify(args.version)
        signer = registry.check_signature(args.version, manifest)
    except RegistryError as exc:
        print(f"FAILED {args.version}: {exc}", file=sys.stderr)
        return 1
    n = len(manifest["files"])
    if signer is None:
        sig = manifest.get("signature")
        print(f"OK {args.version}: {n} files match their SHA-256; signature NOT checked (no "
              f"trusted keys: set CREDIT_RISK_TRUSTED_KEYS or pass --trusted-key; the manifest "
              f"is {'signed by key ' + str(sig.get('key_id')) if sig else 'unsigned'})")
    else:
        print(f"OK {args.version}: {n} files match their SHA-256; manifest signed by trusted "
              f"key {signer}")
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.registry.signing import generate

    private, public, kid = generate(Path(args.out))
    print(f"key {kid}\n  private (mode 0600, for the publisher only): {private}\n"
          f"  public (for every verifier): {public}\n"
          f"CREDIT_RISK_SIGNING_KEY_FILE={private}\nCREDIT_RISK_TRUSTED_KEYS={public}")
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    import pandas as pd

    from credit_risk.pipeline.steps import load_scorer

    scorer = load_scorer(settings, args.version)
    df = pd.read_csv(args.input)
    results = scorer.score_frame(df)
    scored = results["error"].isna() if "error" in results else pd.Series(True, df.index)
    if settings.decision_log and scored.any():
        from credit_risk.registry.decisions import DecisionLog

        names = [f["name"] for f in scorer.fields]
        inputs = df.loc[scored, names].astype(object)
        DecisionLog(settings.decision_log).write(
            f"cli-{datetime.now(UTC):%Y%m%dT%H%M%SZ}",
            inputs.where(inputs.notna(), None).to_dict("records"),
            results.loc[scored].drop(columns=["error"], errors="ignore").to_dict("records"))
    readable = {"reasons": lambda r: r["text"],
                "warnings": lambda w: f"{w['field']} {w['message']}"}
    for column, text in readable.items():  # one readable CSV column each
        if column in results:
            results[column] = ["; ".join(map(text, xs)) if isinstance(xs, list) else ""
                               for xs in results[column]]
    out = pd.concat([df, results], axis=1)
    if args.output == "-":
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(args.output, index=False)
        print(f"scored {len(out)} rows with {scorer.version} -> {args.output}", file=sys.stderr)
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.spec.dataset import load_spec
    from credit_risk.validation import export_suites, read_tables, validate_frames

    spec = load_spec(args.spec or settings.dataset_spec)
    if args.export_suites:
        root, names = export_suites(spec, settings)
        print(f"wrote {len(names)} suites and checkpoints of {spec.name} to {root}")
        return 0
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    out = Path(args.out) if args.out else (
        settings.runs_dir / datetime.now(UTC).strftime("validate-%Y%m%dT%H%M%SZ") / "validation")
    report = validate_frames(spec, read_tables(spec, data_dir), out, settings,
                             {"data_dir": str(data_dir)})
    print(report.message(), file=sys.stdout if report.success else sys.stderr)
    print(report.summary())
    return 0 if report.success else 1


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    from credit_risk.pipeline.monitoring import drift_step

    if args.window_days:
        settings = settings.model_copy(update={"drift_window_days": args.window_days})
    run_id = datetime.now(UTC).strftime("cli-%Y%m%dT%H%M%SZ")
    result = json.loads(Path(drift_step(settings, run_id)).read_text())
    print(f"{result['status']}; drift: {result['drift']}")
    for row in result.get("psi", []):
        flag = "DRIFT" if row["psi"] >= result["psi_threshold"] else ""
        print(f"  {row['field']:<40} PSI {row['psi']:.4f} {flag}")
    if result.get("report"):
        print(f"report: {settings.runs_dir / 'monitoring' / run_id / result['report']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="credit-risk", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate-data", help="write the synthetic source tables")
    g.add_argument("--customers", type=int, default=None)
    g.add_argument("--seed", type=int, default=None, help="default: CREDIT_RISK_DATA_SEED")
    g.add_argument("--shift", action="store_true", help="a drifted batch")
    g.add_argument("--spec", default=None)
    g.add_argument("--out", default=None, help="folder (default: DATA_DIR/<dataset>)")
    g.add_argument("--applications", default=None, metavar="CSV",
                   help="write one CSV of joined applications (no target), e.g. for predict")
    g.set_defaults(fn=cmd_generate)

    t = sub.add_parser("train", help="run the whole pipeline and print the comparison")
    t.add_argument("--spec", default=None, help="built-in spec name or YAML path")
    t.add_argument("--models", default=None, help="comma-separated subset of models")
    t.add_argument("--run-id", default=None)
    t.set_defaults(fn=cmd_train)

    m = sub.add_parser("models", help="the model registry")
    msub = m.add_subparsers(dest="models_cmd", required=True)
    msub.add_parser("list")
    show = msub.add_parser("show")
    show.add_argument("version")
    promote = msub.add_parser("promote")
    promote.add_argument("version")
    rollback = msub.add_parser("rollback")
    for cmd in (promote, rollback):
        cmd.add_argument("--reason", required=True)
        cmd.add_argument("--by", default=None, help="who (default: the OS user)")
    msub.add_parser("history")
    verify = msub.add_parser("verify", help="check every file's SHA-256 and the signature; "
                             "exit 1 with the reason when either fails")
    verify.add_argument("version")
    verify.add_argument("--trusted-key", action="append", default=None, metavar="PEM",
                        help="a trusted public key (repeatable; default: "
                             "CREDIT_RISK_TRUSTED_KEYS)")
    m.set_defaults(fn=cmd_models)

    k = sub.add_parser("keys", help="manifest signing keys")
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    kgen = ksub.add_parser("generate", help="write a new Ed25519 keypair")
    kgen.add_argument("--out", required=True, help="folder for signing_key.pem (mode 0600) "
                      "and signing_key.pub.pem")
    k.set_defaults(fn=cmd_keys)

    d = sub.add_parser("drift", help="recent traffic vs the champion's training data")
    d.add_argument("--window-days", type=float, default=None)
    d.set_defaults(fn=cmd_drift)

    pr = sub.add_parser("predict", help="score a CSV of applications")
    pr.add_argument("input")
    pr.add_argument("-o", "--output", default="-")
    pr.add_argument("--version", default=None, help="default: the champion")
    pr.set_defaults(fn=cmd_predict)
    v = sub.add_parser("validate", help="run the data validation gate on a dataset")
    v.add_argument("--spec", default=None, help="built-in spec name or YAML path")
    v.add_argument("--data-dir", default=None,
                   help="DATA_DIR (tables in DIR/<dataset>/) or the dataset's own folder")
    v.add_argument("--out", default=None, help="result folder (default: RUNS_DIR/validate-<time>)")
    v.add_argument("--export-suites", action="store_true",
                   help="write the spec's suites and checkpoints into the GX folder, then exit")
    v.set_defaults(fn=cmd_validate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args, Settings())
    except (ValueError, RuntimeError, FileNotFoundError, KeyError) as exc:
        print(f"credit-risk: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
