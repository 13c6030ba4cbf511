"""`credit-risk models ...` and `credit-risk keys generate`: the registry and its signing keys.

Imports only registry, config and errors, so it works in a serving-only install.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from credit_risk.config import Settings
from credit_risk.registry.store import Registry, RegistryError
from credit_risk.tables import text_table


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    if args.models_cmd == "verify":
        return _verify(args, settings)
    registry = Registry.from_settings(settings)
    if args.models_cmd == "list":
        champion = registry.alias_version("champion")
        previous = registry.alias_version("previous")
        rows = []
        for v, m in registry.listing():  # parsed and, with trusted keys, signed manifests
            alias = "champion" if v == champion else "previous" if v == previous else ""
            metrics = m.get("metrics")
            rows.append({"version": v, "dataset": m.get("dataset"), "model": m.get("model"),
                         "roc_auc": metrics.get("roc_auc") if isinstance(metrics, dict)
                         else None, "status": m.get("status"), "alias": alias})
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
        for rec in registry.history():  # in the order of the chain of changes
            mark = "  [NOT signed by a trusted key]" if rec.get("verified") is False else ""
            print(f"{rec['set_at']}  {rec['alias']:<8} -> {rec['version']}  by {rec['by']}: "
                  f"{rec['reason']}{mark}")
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    """Every file's SHA-256 and the manifest's signature; 0 when both hold, else 1."""
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
