"""Data validation on the default dataset (50,000 customers): what the gate adds to a run.

Measures the `validate` step as the DAG runs it: a fresh Python process (so Great
Expectations' import is paid, as in an Airflow task) validating a run's snapshot, writing the
JSON result and the Data Docs; plus a breakdown in one process. Writes the "Validation"
section of benchmarks/RESULTS.md and benchmarks/validation.json. Run: `make bench-validation`.

At scale: `python benchmarks/bench_validation.py --customers 1000000` measures the same on
generated data of that size (and the peak RSS of the step's process tree), then validates a
copy of the snapshot with bad rows in it (which must fail, naming them); it writes
benchmarks/validation_scale.md and .json instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks"
REPEATS = 3
BUDGET_S = 20.0

STEP = """
import sys, time
t0 = time.perf_counter()
from credit_risk.config import Settings
from credit_risk.pipeline.steps import validate_step
s = Settings(data_dir=sys.argv[1], runs_dir=sys.argv[2])
validate_step(s, sys.argv[3])
print(time.perf_counter() - t0)
"""


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def breakdown(snapshot: Path, settings) -> dict[str, float]:  # noqa: ANN001
    """The parts of one validation, in this (warm) process."""
    from credit_risk.pipeline.ingest import load_snapshot
    from credit_risk.pipeline.validate import feature_table
    from credit_risk.spec.dataset import load_spec
    from credit_risk.validation import gx_run, reference_frame, suites_for

    spec = load_spec(settings.data.spec)
    parts: dict[str, float] = {}
    t = time.perf_counter()
    gx_run._gx()
    parts["import Great Expectations"] = time.perf_counter() - t
    t = time.perf_counter()
    _, frames = load_snapshot(snapshot)
    parts["load snapshot"] = time.perf_counter() - t
    t = time.perf_counter()
    suites = suites_for(spec, settings)
    docs = snapshot.parent.parent / "breakdown_docs"
    context = gx_run.ephemeral_context(docs)
    checkpoints = gx_run.register(context, suites)
    parts["suites, GX context, checkpoints"] = time.perf_counter() - t
    t = time.perf_counter()
    for table in spec.tables:
        gx_run.run_checkpoint(checkpoints[table], frames[table])
    parts["raw tables"] = time.perf_counter() - t
    t = time.perf_counter()
    for ref in suites.references:
        gx_run.run_checkpoint(checkpoints[ref.batch], reference_frame(ref, frames))
    parts["references"] = time.perf_counter() - t
    t = time.perf_counter()
    features = feature_table(spec, frames)
    parts["build feature table"] = time.perf_counter() - t
    t = time.perf_counter()
    gx_run.run_checkpoint(checkpoints["features"], features, {"base_rows": len(frames["loans"])})
    parts["feature table"] = time.perf_counter() - t
    t = time.perf_counter()
    gx_run.build_docs(context, docs)
    parts["Data Docs"] = time.perf_counter() - t
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, help="generated customers (default: the "
                        "settings' n_customers, written to validation.json and RESULTS.md)")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    if args.customers:
        scale(args.customers, args.repeats)
        return
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from credit_risk.config import Settings
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline import steps as pipeline
    from credit_risk.validation.result import ValidationResult

    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(data_dir=Path(tmp) / "data", runs_dir=Path(tmp) / "runs")
        synthetic.ensure_for(s)  # the 50k dataset (an explicit step)
        snapshot = Path(pipeline.ingest_step(s, "bench"))
        rows = json.loads(snapshot.read_text())["tables"]
        walls = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", STEP, str(s.data.dir),
                                   str(s.data.runs_dir), str(snapshot)],
                                  capture_output=True, text=True, check=True)
            walls.append({"process": time.perf_counter() - t,
                          "in_process": float(proc.stdout.strip().splitlines()[-1])})
        result_path = snapshot.parent.parent / "validation" / "validation.json"
        result = ValidationResult.read(result_path)
        parts = breakdown(snapshot, s)
    wall = statistics.median(w["process"] for w in walls)
    load = os.getloadavg()[0]
    body: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(), "machine": machine(),
        "n_customers": s.data.n_customers, "rows": {n: t["rows"] for n, t in rows.items()},
        "expectations": sum(v.evaluated_expectations for v in result.statistics.values()),
        "batches": len(result.statistics), "success": result.success,
        "validate_step_seconds": {"median": round(wall, 2),
                                  "runs": [round(w["process"], 2) for w in walls],
                                  "in_process": [round(w["in_process"], 2) for w in walls]},
        "breakdown_seconds_warm": {k: round(v, 2) for k, v in parts.items()},
        "budget_seconds": BUDGET_S, "load_average_1min": round(load, 2),
    }
    (OUT / "validation.json").write_text(json.dumps(body, indent=2))
    lines = [
        "## Validation", "",
        f"Date {body['date']}; machine: {body['machine']}. The `validate` step on the default "
        f"dataset ({s.data.n_customers:,} customers: "
        + ", ".join(f"{n} {r:,} rows" for n, r in body["rows"].items())
        + f"), {body['expectations']} expectations in {body['batches']} batches, JSON result "
        "and Data Docs written. Measured by `make bench-validation` "
        "(benchmarks/bench_validation.py).", "",
        "| What | Seconds |", "|---|---|",
        f"| `validate` step in a fresh process (as an Airflow task), median of {REPEATS} | "
        f"{wall:.1f} |",
        f"| of which inside the step (imports included) | "
        f"{statistics.median(w['in_process'] for w in walls):.1f} |",
    ]
    lines += [f"| warm breakdown: {k} | {v:.2f} |" for k, v in parts.items()]
    lines += ["", f"Budget: at most {BUDGET_S:.0f} s added to a run; "
              f"{'within' if wall <= BUDGET_S else 'OVER'} budget (1-minute load average "
              f"{load:.1f} at the end of the measurement)."]
    write_section("\n".join(lines))
    print("\n".join(lines))


def run_step(s, snapshot: Path) -> dict[str, float]:  # noqa: ANN001
    """The validate step in a fresh process: wall, in-step seconds, peak RSS of its tree."""
    sys.path.insert(0, str(OUT))
    from bench_pipeline import GB, TreeSampler

    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", STEP, str(s.data.dir), str(s.data.runs_dir),
                             str(snapshot)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    sampler.stop()
    from credit_risk.validation.result import ValidationResult

    result = ValidationResult.read(snapshot.parent.parent / "validation" / "validation.json")
    return {"process": round(wall, 1),
            "in_process": round(float(out.strip().splitlines()[-1]), 1) if proc.returncode == 0
            else None, "peak_rss_gb": round(sampler.peak / GB, 2),
            "exit_status": proc.returncode, "success": result.success,
            "failures": [f.id for f in result.blocking_failures],
            "error": err.strip().splitlines()[-1] if proc.returncode else None}


def corrupt(snapshot: Path, out: Path) -> tuple[Path, list[str]]:
    """A copy of the snapshot with a few bad rows spread over the tables; the checks that
    must fail."""
    import shutil

    import numpy as np
    import pandas as pd

    shutil.copytree(snapshot.parent, out)
    bureau = pd.read_parquet(out / "bureau.parquet")
    rows = np.linspace(0, len(bureau) - 1, 5).astype(int)  # the first, the last, between
    bureau.loc[rows, "credit_utilization_ratio"] = 150
    bureau.to_parquet(out / "bureau.parquet", index=False)
    customers = pd.read_parquet(out / "customers.parquet")
    customers.loc[len(customers) - 1, "cust_id"] = customers.loc[0, "cust_id"]
    customers.to_parquet(out / "customers.parquet", index=False)
    return out / snapshot.name, ["bureau.credit_utilization_ratio.range",
                                 "customers.cust_id.unique"]


def scale(n: int, repeats: int) -> None:
    """The validate step on n generated customers; then on a copy with bad rows."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from credit_risk.config import Settings
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline import steps as pipeline
    from credit_risk.spec.dataset import load_spec

    sys.path.insert(0, str(OUT))
    from bench_pipeline import code_state

    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        s = Settings(data_dir=Path(tmp) / "data", runs_dir=Path(tmp) / "runs", n_customers=n)
        spec = load_spec(s.data.spec)
        t = time.perf_counter()
        synthetic.write(synthetic.generate(n, s.data.seed), s.data.dir / spec.name)
        setup = {"generate and write CSVs": round(time.perf_counter() - t, 1)}
        t = time.perf_counter()
        snapshot = Path(pipeline.ingest_step(s, "bench"))
        setup["ingest step (in this process)"] = round(time.perf_counter() - t, 1)
        print(setup, flush=True)
        rows = json.loads(snapshot.read_text())["tables"]
        good = [run_step(s, snapshot) for _ in range(repeats)]
        bad_snapshot, expected = corrupt(snapshot, Path(tmp) / "runs" / "bad" / "raw")
        bad = run_step(s, bad_snapshot)
        parts = breakdown(snapshot, s)
    wall = statistics.median(g["process"] for g in good)
    body = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
            "code": code_state(), "n_customers": n,
            "rows": {k: t["rows"] for k, t in rows.items()},
            "validate_step": good, "median_seconds": wall, "budget_seconds": 60.0,
            "bad_data": {**bad, "expected_failures": expected,
                         "caught": bad["success"] is False and set(expected) <= set(
                             bad["failures"])},
            "breakdown_seconds_warm": {k: round(v, 2) for k, v in parts.items()},
            "setup_seconds": setup, "load_average_1min": round(os.getloadavg()[0], 2)}
    (OUT / "validation_scale.json").write_text(json.dumps(body, indent=2))
    b = body["bad_data"]
    md = [f"# Data validation at {n:,} customers", "",
          f"Date {body['date']}; machine: {body['machine']}; commit {body['code']['commit']}. "
          "The `validate` step (Great Expectations, every suite: raw tables, references, the "
          f"feature table; JSON result and Data Docs) on generated data ("
          + ", ".join(f"{k} {r:,} rows" for k, r in body["rows"].items())
          + "), in a fresh process as an Airflow task runs it. Measured by "
          f"`python benchmarks/bench_validation.py --customers {n}`.", "",
          "| run | wall (s) | inside the step (s) | peak RSS, tree (GB) | result |",
          "|---|---:|---:|---:|---|"]
    md += [f"| good data, run {i + 1} | {g['process']:.1f} | {g['in_process']} | "
           f"{g['peak_rss_gb']:.2f} | {'passed' if g['success'] else 'FAILED'} |"
           for i, g in enumerate(good)]
    md += [f"| bad rows (5 utilisations of 150 spread over the table, one duplicate customer "
           f"id) | {b['process']:.1f} | {b['in_process']} | {b['peak_rss_gb']:.2f} | "
           f"{'failed: ' + ', '.join(b['failures']) if not b['success'] else 'PASSED'} |", "",
           "Warm breakdown (one process):", "", "| part | seconds |", "|---|---:|"]
    md += [f"| {k} | {v:.1f} |" for k, v in body["breakdown_seconds_warm"].items()]
    md += ["", f"Target: at most 60 s on 1,000,000 rows: "
           f"{'met' if wall <= 60 else 'NOT met'} (median {wall:.1f} s); bad data "
           f"{'caught' if b['caught'] else 'NOT caught'}. 1-minute load average at the end "
           f"{body['load_average_1min']}."]
    (OUT / "validation_scale.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def write_section(text: str) -> None:
    """Replace only the "## Validation" section of benchmarks/RESULTS.md (others own the rest)."""
    path = OUT / "RESULTS.md"
    current = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start, end = "<!-- validation:start -->", "<!-- validation:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        before, rest = current.split(start, 1)
        current = before + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)


if __name__ == "__main__":
    main()
