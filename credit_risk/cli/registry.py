"""`credit-risk models ...` and `credit-risk keys generate`: the registry and its signing keys.

Imports only registry, config and errors, so it works in a serving-only install.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from credit_risk.cli.views import manifest_text
from credit_risk.config import Settings
from credit_risk.registry import Registry, RegistryError, dataset_of, valid_dataset
from credit_risk.tables import text_table


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    if args.models_cmd == "verify":
        return _verify(args, settings)
    registry = Registry.from_settings(settings)
    dataset = getattr(args, "dataset", None)
    if args.models_cmd == "list":
        return _list(registry, dataset, settings, args.json)
    if args.models_cmd == "scorecard":
        return _scorecard(registry, args.version, args.csv)
    if args.models_cmd == "show":
        manifest = registry.manifest(args.version)
        if args.json:
            print(json.dumps({k: v for k, v in manifest.items() if k != "spec"}, indent=2))
        else:
            held = registry.aliases().get(str(manifest.get("dataset")), {})
            named = [a for a, rec in held.items() if (rec or {}).get("version") == args.version]
            print(manifest_text(manifest, named))
    elif args.models_cmd == "promote":  # verifies checksums and signature first
        registry.promote(args.version, args.reason, by=args.by, dataset=dataset)
        own = dataset_of(args.version, registry.manifest(args.version))
        print(f"champion of {_shown(own)} is now {args.version}")
    elif args.models_cmd == "rollback":
        version = registry.rollback(args.reason, by=args.by, dataset=dataset)
        own = dataset_of(version, registry.manifest(version))
        print(f"rolled back: champion of {_shown(own)} is now {version}")
    elif args.models_cmd == "history":
        for rec in registry.history():  # the chain, in its order
            if dataset is None or rec["dataset"] == dataset:
                # on the chain, vouched for by a trusted record after it: a retired key's
                mark = "  [NOT signed by a trusted key]" if rec["verified"] is False else ""
                print(f"{rec['set_at']}  {rec['dataset']}  {rec['alias']:<8} -> "
                      f"{rec['version']}  by {rec['by']}: {rec['reason']}{mark}")
        _print_rejected(registry)
    return 0


POINTS_FILE = "scorecard.csv"  # written by credit_risk.pipeline.scorecard_bundle


def _scorecard(registry: Registry, version: str, as_csv: bool) -> int:
    """Print a scorecard version's points table (its scorecard.csv, verified)."""
    manifest = registry.manifest(version)
    if POINTS_FILE not in (manifest.get("files") or {}):
        raise RegistryError(f"version {version} is a {manifest.get('model')!r} model: only a "
                            "scorecard has a points table")
    text = registry.read_file(version, POINTS_FILE).decode()
    if as_csv:
        sys.stdout.write(text)
        return 0
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        r["points"] = f"{float(r['points']):.1f}"
        for k in ("event_rate", "woe", "iv"):
            r[k] = f"{float(r[k]):.4f}" if r[k] else ""
    print(text_table(rows, ["field", "bin", "points", "count", "event_rate", "woe", "iv"]))
    return 0


def _print_rejected(registry: Registry) -> int:
    """List the history records that are not on the alias chain; return how many."""
    rejected = registry.rejected_history()
    if rejected:
        print(f"REJECTED history records (not on the alias chain, ignored): {len(rejected)}",
              file=sys.stderr)
        for r in rejected:
            print(f"  {r['name']}: {r['reason']}", file=sys.stderr)
    return len(rejected)


def _shown(dataset: str) -> str:
    """A dataset as printed (a manifest may name anything: listed, never promotable)."""
    return dataset if valid_dataset(dataset) else f"(invalid name {dataset[:60]!r})"


def _list(registry: Registry, only: str | None, settings: Settings, as_json: bool) -> int:
    """Versions grouped by dataset, oldest first, each group headed by its aliases (`as_json`:
    the same as one JSON document)."""
    aliases = registry.aliases()
    groups: dict[str, list[dict[str, object]]] = {d: [] for d in aliases}
    for v, m in registry.listing():  # parsed and, with trusted keys, signed manifests
        dataset = str(m["dataset"])  # listed even when not a dataset name: never promotable
        metrics = m.get("metrics")
        groups.setdefault(dataset, []).append({
            "version": v, "model": m.get("model"),
            "roc_auc": metrics.get("roc_auc") if isinstance(metrics, dict) else None,
            "status": m.get("status")})
    if only is not None:
        groups = {d: rows for d, rows in groups.items() if d == only}
    if not groups and not as_json:
        print(f"no models{f' of dataset {only!r}' if only else ''} in {settings.registry.url}")
        return 0
    document = []
    for dataset in sorted(groups):
        own = aliases.get(dataset, {})
        named = {a: (own.get(a) or {}).get("version") for a in ("champion", "previous")}
        rows = groups[dataset]
        for row in rows:
            row["alias"] = next((a for a, v in named.items() if v == row["version"]), "")
        if as_json:
            document.append({"dataset": dataset, **named, "versions": rows})
            continue
        print(f"dataset {_shown(dataset)}: champion {named['champion'] or '-'}, previous "
              f"{named['previous'] or '-'}")
        listed = {row["version"] for row in rows}
        for alias, version in named.items():
            if version and version not in listed:
                print(f"  ! {alias} names {version}, not a listed model of this dataset "
                      "(serving refuses it)")
        if rows:
            print(text_table([{**r, "ROC AUC": r["roc_auc"]} for r in rows],
                             ["version", "model", "ROC AUC", "status", "alias"]))
        print()
    if as_json:
        print(json.dumps(document, indent=2))
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    """Every file's SHA-256 and the manifest's signature; 0 when both hold, else 1."""
    if args.trusted_key:
        settings = settings.model_copy(update={"trusted_keys": tuple(args.trusted_key)})
    registry = Registry.from_settings(settings)
    try:
        chain = registry.history()
    except RegistryError as exc:
        print(f"FAILED alias chain: {exc}", file=sys.stderr)
        return 1
    rejected = _print_rejected(registry)
    if args.version is None:
        print(f"alias chain: {len({r['seq'] for r in chain})} records on the chain, {rejected} "
              f"rejected; {'signatures checked' if registry.trusted_keys else 'NOT signed'}")
        return 1 if rejected else 0
    try:
        manifest, extra = registry.models.verify(args.version)
        signer = registry.check_signature(args.version, manifest)
    except RegistryError as exc:
        print(f"FAILED {args.version}: {exc}", file=sys.stderr)
        return 1
    if extra:
        print(f"WARNING {args.version}: files not in the manifest, ignored: "
              f"{', '.join(extra)}", file=sys.stderr)
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
