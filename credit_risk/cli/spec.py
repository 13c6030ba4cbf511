"""`credit-risk spec init` and `spec check`: a draft spec from a data file, and a file checked
against its spec before any training. Need the pipeline extra (pandas)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from credit_risk.config import Settings
from credit_risk.spec.dataset import SpecError, load_spec

FITS, DOES_NOT_FIT, USAGE = 0, 1, 2


def cmd_spec(args: argparse.Namespace, settings: Settings) -> int:
    if args.spec_cmd == "init":
        return _init(args)
    return _check(args)


def _init(args: argparse.Namespace) -> int:
    from credit_risk.spec.draft import draft_spec, draft_yaml

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        print(f"credit-risk: error: {out} exists (--force replaces it)", file=sys.stderr)
        return USAGE
    try:
        draft = draft_spec(Path(args.data), args.target, args.name)
    except SpecError as exc:
        print(f"credit-risk: error: {exc}", file=sys.stderr)
        return USAGE
    for warning in draft.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = draft_yaml(draft)
    if out is None:
        sys.stdout.write(text)
        return 0
    out.write_text(text, encoding="utf-8")
    kinds = [c.role for c in draft.columns]
    print(f"draft spec -> {out}: {kinds.count('numeric')} numeric, "
          f"{kinds.count('categorical')} categorical, {kinds.count('ignored')} ignored "
          f"columns, {len(draft.warnings)} warnings; edit it, then: credit-risk spec check "
          f"{out} {args.data}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from credit_risk.spec.check import check_file

    try:
        spec = load_spec(args.spec)
        problems = check_file(spec, Path(args.data))
    except SpecError as exc:
        print(f"credit-risk: error: {exc}", file=sys.stderr)
        return USAGE
    for problem in problems:
        print(problem)
    if problems:
        print(f"{args.data} does not fit {args.spec}: {len(problems)} problems",
              file=sys.stderr)
        return DOES_NOT_FIT
    print(f"{args.data} fits {args.spec}", file=sys.stderr)
    return FITS
