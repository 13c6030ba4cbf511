"""Data validation on the default dataset (50,000 customers): what the gate adds to a run.

Measures the `validate` step as the DAG runs it: a fresh Python process (so Great
Expectations' import is paid, as in an Airflow task) validating a run's snapshot, writing the
JSON result and the Data Docs; plus a breakdown in one process. Writes the "Validation"
section of benchmarks/RESULTS.md and benchmarks/validation.json. Run: `make bench-validation`.
"""

from __future__ import annotations

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
    from credit_risk.spec.dataset import load_spec
    from credit_risk.validation import feature_frame, gx_run, reference_frame, suites_for

    spec = load_spec(settings.dataset_spec)
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
    features = feature_frame(spec, frames)
    parts["build feature table"] = time.perf_counter() - t
    t = time.perf_counter()
    gx_run.run_checkpoint(checkpoints["features"], features, {"base_rows": len(frames["loans"])})
    parts["feature table"] = time.perf_counter() - t
    t = time.perf_counter()
    gx_run.build_docs(context, docs)
    parts["Data Docs"] = time.perf_counter() - t
    return parts


def main() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from credit_risk.config import Settings
    from credit_risk.pipeline import steps as pipeline
    from credit_risk.pipeline import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(data_dir=Path(tmp) / "data", runs_dir=Path(tmp) / "runs")
        synthetic.ensure_for(s)  # the 50k dataset (an explicit step)
        snapshot = Path(pipeline.ingest_step(s, "bench"))
        rows = json.loads(snapshot.read_text())["tables"]
        walls = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", STEP, str(s.data_dir), str(s.runs_dir),
                                   str(snapshot)], capture_output=True, text=True, check=True)
            walls.append({"process": time.perf_counter() - t,
                          "in_process": float(proc.stdout.strip().splitlines()[-1])})
        result_path = snapshot.parent.parent / "validation" / "validation.json"
        result = json.loads(result_path.read_text())
        parts = breakdown(snapshot, s)
    wall = statistics.median(w["process"] for w in walls)
    load = os.getloadavg()[0]
    body = {
        "date": datetime.now(UTC).date().isoformat(), "machine": machine(),
        "n_customers": s.n_customers, "rows": {n: t["rows"] for n, t in rows.items()},
        "expectations": sum(v["evaluated_expectations"] for v in result["statistics"].values()),
        "batches": len(result["statistics"]), "success": result["success"],
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
        f"dataset ({s.n_customers:,} customers: "
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
