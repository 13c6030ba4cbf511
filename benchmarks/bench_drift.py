"""Drift monitoring at scale: the drift step on 1,000,000 logged decisions.

Setup (not measured): a champion trained by the real pipeline on 3,000 customers (logistic
regression, one search trial: the model does not matter here, its inputs and reference sample
do), then N decisions in the log: generated applications (the shifted process, so there is
drift to find) scored by the champion in batches and written through the decision log's own
`write` (a JSONL file; with `--postgres`, also a PostgreSQL table in a schema of its own, dropped
afterwards; ANALYZEd after the bulk load, as autovacuum would before long: without planner
statistics PostgreSQL sorts the rest of the window for every page), all inside the drift
window.

Measured: `drift_step` in a fresh process (as the monitoring DAG's task runs it): wall time,
time inside the step, peak RSS of the process tree (psutil, sampled every 0.1 s) and the
process's kernel high-water mark; and a breakdown in this process (reading and parsing the
log, PSI counts on every row, the Evidently report on its sample). Writes benchmarks/drift.md
and benchmarks/drift.json. Run: `python benchmarks/bench_drift.py [--rows N] [--postgres URL]`;
`--backends postgresql` measures that backend only and keeps the other's last figures (with
their own date and machine); `--compare-with DIR` also times the drift step of the code in DIR
(e.g. `git archive <commit> | tar -x -C DIR`) on the same log: before and after on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).parent))
from bench_pipeline import GB, TreeSampler, code_state, machine  # noqa: E402

OUT = Path(__file__).parent
ROWS = 1_000_000
BATCH = 10_000
BUDGET_S = 60.0

STEP = """
import json, resource, sys, time
t0 = time.perf_counter()
from credit_risk.config import Settings
from credit_risk.pipeline.monitoring import drift_step
s = Settings(registry_url=sys.argv[1], runs_dir=sys.argv[2], decision_log=sys.argv[3])
path = drift_step(s, sys.argv[4])
print(json.dumps({"seconds": time.perf_counter() - t0, "path": path,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def champion(base: Path) -> Any:
    from credit_risk.config import Settings
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline import steps

    s = Settings(data_dir=base / "data", runs_dir=base / "runs",
                 registry_url=str(base / "registry"), decision_log=None, n_customers=3000,
                 models=("logistic_regression",), search_iterations=1)
    synthetic.ensure_for(s)
    steps.run_all(s, "champion")
    return s


def fill(settings: Any, targets: list[str], rows: int) -> float:
    """Score `rows` generated applications and log them to every target; the seconds it took."""
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline.ingest import assemble
    from credit_risk.pipeline.steps import load_scorer
    from credit_risk.records.backends import decision_log_at
    from credit_risk.spec.dataset import load_spec

    t = time.perf_counter()
    scorer = load_scorer(settings)
    names = [f["name"] for f in scorer.fields]
    spec = load_spec(settings.data.spec)
    logs = [decision_log_at(target) for target in targets]
    try:
        for dlog in logs:
            dlog.migrate()
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            apps = assemble(spec, synthetic.generate(n, seed=1000 + start, shift=True))[names]
            records = apps.astype(object).where(apps.notna(), None).to_dict("records")
            for i in range(0, n, BATCH):
                batch = records[i:i + BATCH]
                results = scorer.score_records(batch)
                for dlog in logs:
                    dlog.write(f"bench-{start + i}", batch, results)
            print(f"  logged {start + n:,} decisions", flush=True)
    finally:
        for dlog in logs:
            dlog.close()
    return time.perf_counter() - t


def measure_step(settings: Any, target: str, run_id: str,
                 src: Path | None = None) -> dict[str, Any]:
    """The drift step in a fresh process: wall, in-step seconds, peak RSS; with `src`, the
    code of that folder (imported from it: its cwd and PYTHONPATH) instead of this tree's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_RISK_")}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", STEP, settings.registry.url,
                             str(settings.data.runs_dir), target, run_id],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=None if src is None else str(src))
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"drift step failed: {err[-3000:]}")
    info = json.loads(out.strip().splitlines()[-1])
    from credit_risk.pipeline.run_reports import DriftReport, read_report

    result = read_report(DriftReport, info["path"])
    return {"process_seconds": round(wall, 1), "step_seconds": round(info["seconds"], 1),
            "peak_rss_gb": round(sampler.peak / GB, 3),
            "process_maxrss_gb": round(info["maxrss"] / GB, 3),
            "status": result.status, "drift": result.drift,
            "current_rows": result.current_rows, "psi_rows": result.psi_rows,
            "evidently_sample_rows": result.evidently_sample_rows,
            "drifted_fields": result.drifted_fields,
            "psi_top": [p.model_dump() for p in result.psi[:3]]}


def breakdown(settings: Any, target: str) -> dict[str, float]:
    """The parts of one drift check, in this process."""
    import io
    from datetime import timedelta

    from credit_risk.pipeline import monitoring
    from credit_risk.records.backends import decision_log_at
    from credit_risk.registry import Registry

    registry = Registry(settings.registry.url)
    version = registry.alias_version("champion")
    manifest = registry.manifest(version)
    reference = pd_read(io.BytesIO(registry.read_file(version, monitoring.REFERENCE_FILE)))
    fields, names = manifest["inputs"], [f["name"] for f in manifest["inputs"]]
    until = datetime.now(UTC)
    since = until - timedelta(days=7)
    parts: dict[str, float] = {}
    dlog = decision_log_at(target)
    t = time.perf_counter()
    for _ in dlog.iter_chunks(since, until):
        pass
    parts["read and parse whole records (iter_chunks)"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in dlog.iter_chunks(since, until, columns=("inputs", "model_version")):
        pass
    parts["read what drift uses (iter_chunks, columns=inputs, model_version)"] = \
        time.perf_counter() - t
    acc = monitoring.DriftAccumulator(reference, fields,
                                      sample_rows=monitoring.EVIDENTLY_SAMPLE_ROWS)
    t = time.perf_counter()
    for chunk in monitoring.traffic_chunks(dlog, since, until, {version}, names):
        acc.add(chunk)
    parts["read, frame per chunk, PSI counts and sample (every row)"] = time.perf_counter() - t
    dlog.close()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        monitoring.evidently_report(reference[names], acc.sample(), Path(tmp) / "r.html")
        parts[f"Evidently report on the sample ({len(acc.sample()):,} rows)"] = \
            time.perf_counter() - t
    return {k: round(v, 1) for k, v in parts.items()}


def pd_read(buf: Any) -> Any:
    import pandas as pd

    return pd.read_parquet(buf)


def postgres_url(server: str, schema: str) -> str:
    options = quote(f"-csearch_path={schema}")
    return f"postgresql+psycopg://{server}?options={options}&application_name={schema}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--postgres", metavar="USER@HOST:PORT/DB",
                        help="also measure a PostgreSQL decision log on this server")
    parser.add_argument("--backends", default="jsonl,postgresql",
                        help="which to measure (comma-separated; default both, postgresql "
                             "only with --postgres); the others keep their last figures")
    parser.add_argument("--compare-with", metavar="DIR", type=Path,
                        help="also time the drift step of the code in DIR on the same logs")
    parser.add_argument("--compare-label", default="the --compare-with folder",
                        help="what the code in DIR is, for the report (e.g. commit 0187b53)")
    args = parser.parse_args()
    wanted = {b.strip() for b in args.backends.split(",") if b.strip()}
    if not wanted <= {"jsonl", "postgresql"}:
        parser.error(f"--backends: jsonl and/or postgresql, not {args.backends}")
    if not args.postgres:
        wanted.discard("postgresql")
    if not wanted:
        parser.error("nothing to measure (postgresql needs --postgres)")
    os.environ.update(GX_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    from credit_risk.pipeline.monitoring import EVIDENTLY_SAMPLE_ROWS

    body: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                            "machine": machine(), "code": code_state(), "rows": args.rows,
                            "evidently_sample_rows": EVIDENTLY_SAMPLE_ROWS,
                            "budget_seconds": BUDGET_S, "backends": {}}
    measured = {"date": body["date"], "machine": body["machine"],
                "commit": body["code"]["commit"]}
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        base = Path(tmp)
        settings = champion(base)
        targets = {"jsonl": str(base / "decisions.jsonl")} if "jsonl" in wanted else {}
        schema = None
        if "postgresql" in wanted:
            import psycopg

            schema = f"bench_drift_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(f"postgresql://{args.postgres}", autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            targets["postgresql"] = postgres_url(args.postgres, schema)
        try:
            print(f"logging {args.rows:,} decisions to {', '.join(targets)}", flush=True)
            body["setup_seconds_not_measured"] = round(
                fill(settings, list(targets.values()), args.rows), 1)
            if schema:  # after a bulk load, as autovacuum would before long: planner stats
                with psycopg.connect(f"postgresql://{args.postgres}", autocommit=True) as conn:
                    conn.execute(f"ANALYZE {schema}.decisions")
            for backend, target in targets.items():
                print(f"{backend}: drift step", flush=True)
                step = measure_step(settings, target, f"bench-{backend}")
                parts = breakdown(settings, target)
                size = Path(target).stat().st_size if backend == "jsonl" else None
                body["backends"][backend] = {"measured": measured, "log_bytes": size,
                                             "drift_step": step, "breakdown_seconds": parts}
                if args.compare_with is not None:
                    print(f"{backend}: drift step of {args.compare_with}", flush=True)
                    body["backends"][backend]["compared_with"] = {
                        "code": str(args.compare_with), "label": args.compare_label,
                        "drift_step": measure_step(settings, target, f"before-{backend}",
                                                   src=args.compare_with.resolve())}
                print(json.dumps(body["backends"][backend], indent=2), flush=True)
        finally:
            if schema:
                import psycopg

                with psycopg.connect(f"postgresql://{args.postgres}", autocommit=True) as conn:
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE application_name = %s", (schema,))
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    body["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    keep_previous(body)
    (OUT / "drift.json").write_text(json.dumps(body, indent=2))
    write_md(body)


def keep_previous(body: dict[str, Any]) -> None:
    """The backends not measured this time: their last figures, with when and where."""
    path = OUT / "drift.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    for name, entry in old.get("backends", {}).items():
        if name in body["backends"] or old.get("rows") != body["rows"]:
            continue
        entry.setdefault("measured", {"date": old["date"], "machine": old["machine"],
                                      "commit": old.get("code", {}).get("commit"),
                                      "load_average_1min_at_end":
                                          old.get("load_average_1min_at_end")})
        body["backends"][name] = entry


def write_md(body: dict[str, Any]) -> None:
    md = ["# Drift monitoring at scale", "",
          f"Date {body['date']}; machine: {body['machine']}; commit {body['code']['commit']}. "
          f"`drift_step` on {body['rows']:,} logged decisions (generated shifted applications "
          "scored by a small champion, all in the drift window), in a fresh process as the "
          "monitoring DAG runs it. PSI on every decision of the window, the Evidently report on "
          f"a uniform sample of at most `EVIDENTLY_SAMPLE_ROWS` = "
          f"{body['evidently_sample_rows']:,} of them (credit_risk/pipeline/monitoring.py). "
          "Measured by `python benchmarks/bench_drift.py` (benchmarks/bench_drift.py).", "",
          "| decision log | step wall (s) | inside the step (s) | peak RSS, tree (GB) | "
          "process high-water (GB) | rows (PSI) | Evidently sample | drift found |",
          "|---|---:|---:|---:|---:|---:|---:|---|"]
    def row(label: str, s: dict[str, Any]) -> str:
        return (f"| {label} | {s['process_seconds']:.1f} | {s['step_seconds']:.1f} | "
                f"{s['peak_rss_gb']:.2f} | {s['process_maxrss_gb']:.2f} | "
                f"{s['psi_rows']:,} | {s['evidently_sample_rows']:,} | "
                f"{s['drift']} ({', '.join(s['drifted_fields'] or [])}) |")

    earlier = []
    for name, b in body["backends"].items():
        when = b.get("measured", {})
        label = name
        if when and when.get("date") != body["date"]:
            label = f"{name} (earlier run\\*)"
            earlier.append(f"\\* {name}: measured {when['date']} on {when['machine']}, commit "
                           f"{when.get('commit')} (1-minute load average at the end "
                           f"{when.get('load_average_1min_at_end')}); not re-run since.")
        md.append(row(label, b["drift_step"]))
        if b.get("note") and when.get("date", body["date"]) == body["date"]:
            earlier.append(f"{name}: {b['note']}.")
        if b.get("compared_with"):
            md.append(row(f"{name}, before: the code of {b['compared_with']['label']}",
                          b["compared_with"]["drift_step"]))
    md += ["", *earlier, ""] if earlier else [""]
    for name, b in body["backends"].items():
        md += [f"Breakdown, {name} (in one warm process):", "", "| part | seconds |", "|---|---:|"]
        md += [f"| {k} | {v:.1f} |" for k, v in b["breakdown_seconds"].items()]
        if b.get("log_bytes"):
            md.append(f"| (log size: {b['log_bytes'] / 1e6:.0f} MB) | |")
        md.append("")
    verdicts = [name + (" met" if b["drift_step"]["process_seconds"] <= body["budget_seconds"]
                        else " NOT met") for name, b in body["backends"].items()]
    md.append(f"Target: at most {body['budget_seconds']:.0f} s on 1,000,000 decisions: "
              f"{', '.join(verdicts)} (1-minute load average at the end "
              f"{body['load_average_1min_at_end']}; other jobs shared the 2 cores).")
    md += ["", "Where the time goes: reading the log, not the statistics. JSONL: parsing each "
           "line whole (orjson; about 1.1 KB a decision, most of it the reasons: `columns=` "
           "cannot save that in a file) and one frame per chunk of 10,000; the PSI counts and "
           "the sample take a few seconds, Evidently on the sample under 10 s. PostgreSQL: "
           "drift reads `iter_chunks(columns=(\"inputs\", \"model_version\"))`, one query "
           "over the window in (at, id) order through a server-side cursor (10,000 rows per "
           "FETCH) that selects just those two columns, `inputs` decoded with orjson: "
           "`result` (the reasons, most of a record) is neither sent nor decoded. Before "
           "(the 'before' row, same machine and data): keyset pages of `inputs` and `result`, "
           "both decoded with the standard json module, a whole record built per row. Whole "
           "records still cost about three times the drift read (breakdown). The benchmark "
           "ANALYZEs the table after loading, as autovacuum would: without statistics the "
           "keyset pages sorted the rest of the window for every page (an earlier attempt was "
           "stopped after 5 minutes); the cursor is planned once (not measured without "
           "statistics). Memory stays bounded: one chunk, the counts and the sample."]
    (OUT / "drift.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:  # rewrite drift.md from drift.json
        write_md(json.loads((OUT / "drift.json").read_text()))
    else:
        main()
