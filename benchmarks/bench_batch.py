"""Batch scoring in-process (`make bench-batch`): rows/s of a 1,000-row batch, as the batch API
scores it, with 3 reasons and without; where the time goes; and how much the reasons' fast
contributions (path sums, `credit_risk.scoring.pathsums`) differ from XGBoost's own
`approx_contribs` and from exact TreeSHAP. Writes benchmarks/batch.json and batch.md.

Uses `make bench-serving`'s XGBoost champion (trained on the default 50,000 customers into
var/bench-serving on first use). Only public calls that every version has are timed, so the
script also measures an older checkout: `PYTHONPATH=<checkout> python benchmarks/bench_batch.py
--label before --no-write`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import orjson  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_serving  # noqa: E402

from credit_risk.registry import Registry  # noqa: E402
from credit_risk.scoring.request import validate_many  # noqa: E402
from credit_risk.scoring.scorer import Scorer  # noqa: E402


def _per_row(fn, rows: int, reps: int) -> float:
    """Median CPU time of `fn` over `reps` calls, in microseconds per row (CPU time: less
    skewed than wall time by other work on the machine)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times)) / rows * 1e6


def throughput(scorer: Scorer, batch: list[dict], reps: int) -> dict:
    """The batch API's in-process work on one batch: validate, score, the response JSON."""
    plain = copy.copy(scorer)
    plain.n_reasons = 0
    out = {}
    for name, s in (("3 reasons", scorer), ("no reasons", plain)):
        def whole(s=s):
            clean, _ = validate_many(s.fields, batch, s.rules)
            return orjson.dumps({"results": s.score_records(clean)},
                                option=orjson.OPT_SERIALIZE_NUMPY)

        us = _per_row(whole, len(batch), reps)
        out[name] = {"us_per_row": us, "rows_per_s": 1e6 / us}
    return out


def steps(scorer: Scorer, batch: list[dict], reps: int) -> dict:
    n = len(batch)
    explainer = scorer.explainer
    clean, _ = validate_many(scorer.fields, batch, scorer.rules)
    rows, _ = scorer.plan.features.prepare(clean)
    contributions = explainer.contributions(rows)
    plain = copy.copy(scorer)
    plain.n_reasons = 0
    return {
        "validate": _per_row(lambda: validate_many(scorer.fields, batch, scorer.rules), n, reps),
        "features": _per_row(lambda: scorer.plan.features.prepare(clean), n, reps),
        "model head (PD)": _per_row(lambda: scorer.plan.predict_raw(rows), n, reps),
        "contributions": _per_row(lambda: explainer.contributions(rows), n, reps),
        "reasons: rank and word": _per_row(
            lambda: explainer.explain(rows, clean, 3, contributions=contributions), n, reps),
        "score_records, 3 reasons": _per_row(lambda: scorer.score_records(clean), n, reps),
        "score_records, no reasons": _per_row(lambda: plain.score_records(clean), n, reps),
    }


def accuracy(scorer: Scorer, records: list[dict]) -> dict | None:
    """Path sums vs XGBoost's approx_contribs vs exact TreeSHAP on `records`: the largest
    difference, and the share of rows whose top 3 reasons (features, in order) are the same."""
    import xgboost as xgb

    explainer = scorer.explainer
    if getattr(explainer, "path_sums", None) is None:
        return None
    clean, _ = validate_many(scorer.fields, records, scorer.rules)
    rows, _ = scorer.plan.features.prepare(clean)
    data = xgb.DMatrix(rows.astype(np.float32))
    group = explainer._to_group
    booster = explainer._booster
    by = {"path sums": explainer.path_sums(rows)[1],
          "approx_contribs": booster.predict(data, pred_contribs=True,
                                             approx_contribs=True)[:, :-1] @ group,
          "exact TreeSHAP": booster.predict(data, pred_contribs=True)[:, :-1] @ group}
    sample = rows[:1000]
    cost = {"path sums": _per_row(lambda: explainer.path_sums(sample), len(sample), 5),
            "approx_contribs": _per_row(lambda: booster.predict(
                xgb.DMatrix(sample.astype(np.float32), nthread=1), pred_contribs=True,
                approx_contribs=True), len(sample), 5),
            "exact TreeSHAP": _per_row(lambda: booster.predict(
                xgb.DMatrix(sample.astype(np.float32), nthread=1), pred_contribs=True),
                len(sample), 2)}
    tops = {k: [[r["feature"] for r in x] for x in
                explainer.explain(rows, clean, 3, contributions=v)] for k, v in by.items()}

    def same(a: str, b: str) -> float:
        return float(np.mean([x == y for x, y in zip(tops[a], tops[b], strict=True)]))

    return {"rows": len(rows), "us_per_row": cost,
            "max_abs_diff_path_sums_vs_approx": float(np.abs(by["path sums"]
                                                             - by["approx_contribs"]).max()),
            "top3_same_path_sums_vs_approx": same("path sums", "approx_contribs"),
            "top3_same_approx_vs_exact": same("approx_contribs", "exact TreeSHAP"),
            "top1_same_approx_vs_exact": float(np.mean(
                [x[:1] == y[:1] for x, y in zip(tops["approx_contribs"],
                                                 tops["exact TreeSHAP"], strict=True)]))}


def markdown(m: dict, version: str, runs: dict, acc: dict | None) -> str:
    lines = ["## Batch scoring in-process", "",
             f"Measured by `make bench-batch` (`benchmarks/bench_batch.py`) on {m['date']}: "
             f"{m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, XGBoost {m['xgboost']}. "
             f"Model: XGBoost champion `{version}` (default 50,000 customers). One process, "
             "one thread; a 1,000-row batch validated, scored and serialised as the batch API "
             "does (no HTTP, no decision log); median CPU time of the repeats. Load average "
             "during each run: " + ", ".join(f"{k} {r.get('load_average', 0):.1f}"
                                             for k, r in runs.items())
             + " (other work on the machine makes every figure slower and the ratios less "
             "reliable: re-run on a quiet machine). `before`, when shown: this script on the "
             "code before issue 21's batch reasons.", ""]
    labels = list(runs)
    lines += ["| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for key in ("3 reasons", "no reasons"):
        lines.append(f"| rows/s, {key} | " + " | ".join(
            f"{runs[k]['throughput'][key]['rows_per_s']:,.0f}" for k in labels) + " |")
    for step in runs[labels[-1]]["steps"]:
        lines.append(f"| {step} (us/row) | " + " | ".join(
            f"{runs[k]['steps'][step]:.2f}" if step in runs[k]["steps"] else "" for k in labels)
            + " |")
    if acc:
        diff = acc["max_abs_diff_path_sums_vs_approx"]
        lines += ["", f"Contributions on {acc['rows']:,} test applications: path sums vs "
                  f"XGBoost's `approx_contribs` differ by at most {diff:.1e} (log-odds) and "
                  "give the same top 3 reasons (features, in order) for "
                  f"{acc['top3_same_path_sums_vs_approx']:.2%} of applications; "
                  "`approx_contribs` and exact TreeSHAP give the same top 3 for "
                  f"{acc['top3_same_approx_vs_exact']:.1%} and the same first reason for "
                  f"{acc['top1_same_approx_vs_exact']:.1%}. CPU time per row (1,000 rows, "
                  "one thread): " + ", ".join(f"{k} {v:.1f} us"
                                              for k, v in acc["us_per_row"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=bench_serving.ROOT / "var" / "bench-serving")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--label", default="after")
    parser.add_argument("--merge", type=Path, help="a JSON of this script's (e.g. `before`) "
                        "to show next to this run")
    parser.add_argument("--json", type=Path, default=HERE / "batch.json")
    parser.add_argument("--no-write", action="store_true", help="only --json, not batch.md")
    args = parser.parse_args()
    settings, version = bench_serving.prepare_model(args.work, retrain=False)
    scorer = Scorer.load(Registry(settings.registry.url), version)
    records = bench_serving.sample_records(settings, scorer, max(args.rows, 3000))
    batch = records[:args.rows]
    run = {"throughput": throughput(scorer, batch, args.reps),
           "steps": steps(scorer, batch, args.reps), "load_average": os.getloadavg()[0]}
    runs = json.loads(args.merge.read_text())["runs"] if args.merge else {}
    runs[args.label] = run
    acc = accuracy(scorer, records[:3000])
    m = bench_serving.machine()
    args.json.write_text(json.dumps({"machine": m, "version": version, "runs": runs,
                                     "accuracy": acc}, indent=1))
    print(json.dumps(run, indent=1))
    if not args.no_write:
        path = HERE / "batch.md"
        text = path.read_text() if path.exists() else ""
        cut = text.find("\n## ", 1)  # the sections after this script's own are kept
        path.write_text(markdown(m, version, runs, acc) + (text[cut:] if cut >= 0 else ""))


if __name__ == "__main__":
    main()
