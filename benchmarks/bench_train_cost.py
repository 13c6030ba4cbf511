"""One candidate's whole training vs a plain 5-fold cross-validation of the same model.

On generated data (credit_risk.datasets.synthetic, split as the pipeline splits), for each
model, in the same run: a plain 5-fold CV of the same features -> model pipeline (no SMOTE,
fixed parameters: the middle of its search space), then `train_candidate` (search,
out-of-fold calibration, refit) under several settings: "before" (random search on all rows,
SMOTE to 1:1, no early stopping, no cap on forest trees: the behaviour before issue 11), each
shortcut alone, and "after" (the defaults). Test ROC-AUC and ECE of each on the untouched test part.

Writes benchmarks/train_cost.md and .json. Run:
`python benchmarks/bench_train_cost.py --customers 200000` (about 15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from imblearn.pipeline import Pipeline
from sklearn.model_selection import StratifiedKFold, cross_validate

from credit_risk.config import Settings, TrainingSettings
from credit_risk.datasets import synthetic
from credit_risk.pipeline.evaluate import expected_calibration_error
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.train import (
    REFERENCE_PARAMS,
    _fixed_vocabulary,
    build_pipeline,
    forest_samples,
    raw_pd,
    split,
    train_candidate,
)
from credit_risk.spec.dataset import load_spec

OUT = Path(__file__).parent
BEFORE = {"search_strategy": "random", "smote_ratio": 1.0, "early_stopping_rounds": 0,
          "forest_max_tree_rows": 10**9}
DEFAULTS = {k: TrainingSettings.model_fields[k].default for k in
            ("search_strategy", "smote_ratio", "early_stopping_rounds", "search_iterations",
             "forest_max_tree_rows")}
VARIANTS: dict[str, dict[str, Any]] = {
    "before": BEFORE,
    "smote_ratio": {**BEFORE, "smote_ratio": DEFAULTS["smote_ratio"]},
    "halving": {**BEFORE, "search_strategy": "halving"},
    "early_stopping": {**BEFORE, "early_stopping_rounds": 30},  # off by default
    "forest_cap": {**BEFORE, "forest_max_tree_rows": DEFAULTS["forest_max_tree_rows"]},
    "after": {},
}
EXTRA: dict[str, dict[str, Any]] = {  # not run by default: --variants after,smote_0.25,...
    "smote_0.25": {**BEFORE, "smote_ratio": 0.25},
    "after_9_trials": {"search_iterations": 9},
    "after_smote_0.25": {"smote_ratio": 0.25},
    "after_smote_1": {"smote_ratio": 1.0},
}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="minutes")


def reference(name: str, X, y, X_test, y_test, spec, seed: int) -> dict[str, Any]:
    """Plain 5-fold CV of features -> model with fixed parameters, no SMOTE; then one fit on
    all training rows for its test figures (timed apart)."""
    fixed, monotone = _fixed_vocabulary(spec, X)
    pipe, _ = build_pipeline(name, fixed, monotone, seed)
    plain = Pipeline([s for s in pipe.steps if s[0] != "smote"]).set_params(
        **REFERENCE_PARAMS[name])
    if name == "random_forest":  # the same model: trees capped as in training (4/5 of the rows)
        plain.set_params(model__max_samples=forest_samples(
            plain.named_steps["model"].max_samples, len(X) * 4 // 5,
            Settings().training.forest_max_tree_rows))
    start = time.perf_counter()
    cv = cross_validate(plain, X, y, scoring="roc_auc", n_jobs=1,
                        cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    seconds = time.perf_counter() - start
    plain.fit(X, y)
    p = raw_pd(plain, X_test)
    from sklearn.metrics import roc_auc_score

    return {"seconds": seconds, "cv_roc_auc": float(np.mean(cv["test_score"])),
            "params": {k.removeprefix("model__"): v for k, v in REFERENCE_PARAMS[name].items()},
            "test_roc_auc": float(roc_auc_score(y_test, p)),
            "test_ece": expected_calibration_error(y_test, p)}


def candidate(name: str, X, y, X_test, y_test, spec, settings: Settings) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    start = time.perf_counter()
    c = train_candidate(name, X, y, spec, settings)
    seconds = time.perf_counter() - start
    pd_, raw = c.model.predict_pd(X_test), c.model.predict_raw(X_test)
    return {"seconds": seconds, "cv_roc_auc": c.cv_roc_auc, "params": c.params,
            "timings": {k: round(v, 2) for k, v in c.timings.items()},
            "fits": len(c.search), "trials": [
                {k: r[k] for k in ("rung", "rows", "cv_roc_auc") if k in r} for r in c.search],
            "test_roc_auc": float(roc_auc_score(y_test, pd_)),
            "test_ece": expected_calibration_error(y_test, pd_),
            "test_ece_uncalibrated": expected_calibration_error(y_test, raw)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--models", default="logistic_regression,random_forest,xgboost")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="train_cost", help="file stem under benchmarks/")
    ap.add_argument("--keep-others", action="store_true",
                    help="keep the other models' results of the existing file (each keeps its "
                         "own date and machine)")
    args = ap.parse_args()

    spec = load_spec("lauki_synthetic")
    start = time.perf_counter()
    df = assemble(spec, synthetic.generate(args.customers, seed=args.seed))
    y = np.asarray(spec.is_default(df[spec.target.column]), dtype=int)
    df = df.drop(columns=[spec.target.column])
    X, X_test, y_train, y_test = split(df, y, 0.2, args.seed, spec.split_column())
    print(f"data: {len(X):,} training and {len(X_test):,} test rows "
          f"({time.perf_counter() - start:.1f} s)", flush=True)

    results: dict[str, Any] = {}
    for name in args.models.split(","):
        ref = reference(name, X, y_train, X_test, y_test, spec, args.seed)
        print(f"{name} plain 5-fold CV: {ref['seconds']:.1f} s, test ROC-AUC "
              f"{ref['test_roc_auc']:.4f}", flush=True)
        runs = {}
        for variant in args.variants.split(","):
            if (variant, name) in (("early_stopping", "logistic_regression"),
                                   ("early_stopping", "random_forest"),
                                   ("forest_cap", "logistic_regression"),
                                   ("forest_cap", "xgboost")):
                continue  # the other model's own shortcut
            settings = Settings(seed=args.seed, decision_log=None, **{**VARIANTS, **EXTRA}[variant])
            run = candidate(name, X, y_train, X_test, y_test, spec, settings)
            run["ratio"] = run["seconds"] / ref["seconds"]
            run["settings"] = {k: getattr(settings.training, k) for k in
                               ("search_strategy", "search_iterations", "cv_folds",
                                "smote_ratio", "early_stopping_rounds",
                                "forest_max_tree_rows")}
            runs[variant] = run
            print(f"  {variant}: {run['seconds']:.1f} s ({run['ratio']:.1f}x), test ROC-AUC "
                  f"{run['test_roc_auc']:.4f}, ECE {run['test_ece']:.4f}", flush=True)
        results[name] = {"reference": ref, "variants": runs, "date": now(), "machine": machine()}

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"date": now(), "machine": machine(),
           "customers": args.customers, "train_rows": len(X), "test_rows": len(X_test),
           "train_default_rate": float(y_train.mean()), "peak_rss_mb": round(peak_mb),
           "variants": {k: v for k, v in {**VARIANTS, **EXTRA}.items()
                        if k in args.variants.split(",")}, "models": results}
    if args.keep_others and (OUT / f"{args.out}.json").exists():
        before = json.loads((OUT / f"{args.out}.json").read_text())
        if before["customers"] != args.customers:
            raise SystemExit(f"--keep-others: the existing file is for {before['customers']:,} "
                             "customers")
        kept = {k: {"date": before["date"], "machine": before["machine"], **v}
                for k, v in before["models"].items() if k not in results}
        out["models"] = {**kept, **results}
        out["variants"] = {**before["variants"], **out["variants"]}
    (OUT / f"{args.out}.json").write_text(json.dumps(out, indent=2, default=str))
    (OUT / f"{args.out}.md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict[str, Any]) -> str:
    lines = [
        "# Training cost: one candidate vs a plain 5-fold CV of the same model", "",
        f"Date {out['date']}; machine: {out['machine']}; {out['customers']:,} generated "
        f"customers ({out['train_rows']:,} training rows, default rate "
        f"{out['train_default_rate']:.1%}; {out['test_rows']:,} test rows); peak RSS "
        f"{out['peak_rss_mb']:,} MB. Command: `python benchmarks/bench_train_cost.py "
        f"--customers {out['customers']}`.", "",
        "Reference: features -> model with fixed parameters (the middle of the search space), "
        "no SMOTE, 5-fold `cross_validate`. Candidate: `train_candidate` (search, out-of-fold "
        "calibration, refit) with the settings of the variant: `before` = random search on "
        "all rows, SMOTE 1:1, no early stopping, forest trees on half the rows; `after` = the "
        "defaults. Ratio = candidate "
        "seconds / reference seconds (target: at most 10). Where a candidate's time went: "
        "`folds` = each fold's features and SMOTE (once per fold, shared by the trials), "
        "`trials` = the model fits and out-of-fold predictions, `refit` = features, SMOTE "
        "and model on all training rows. Test figures on the untouched "
        "test part; ECE after calibration (uncalibrated in brackets).", "",
        "| model | run | seconds | ratio | folds / trials / refit s | CV ROC-AUC | "
        "test ROC-AUC | test ECE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in out["models"].items():
        if r.get("date", out["date"])[:13] != out["date"][:13]:
            lines.append(f"| {name} | *measured {r['date']}, {r['machine']}* | | | | | | |")
        ref = r["reference"]
        lines.append(f"| {name} | plain 5-fold CV | {ref['seconds']:.1f} | 1 | | "
                     f"{ref['cv_roc_auc']:.4f} | {ref['test_roc_auc']:.4f} | "
                     f"{ref['test_ece']:.4f} |")
        for variant, v in r["variants"].items():
            t = v["timings"]
            parts = " / ".join(f"{t.get(k, 0):.1f}" for k in ("folds", "trials", "refit"))
            lines.append(f"| {name} | {variant} | {v['seconds']:.1f} | {v['ratio']:.1f} | "
                         f"{parts} | {v['cv_roc_auc']:.4f} | {v['test_roc_auc']:.4f} | "
                         f"{v['test_ece']:.4f} ({v['test_ece_uncalibrated']:.4f}) |")
    lines += ["", "Variants (settings changed from `before`):", ""]
    lines += [f"- `{k}`: {v or 'the defaults'}" for k, v in out["variants"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
