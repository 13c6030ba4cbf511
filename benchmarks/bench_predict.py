"""`credit-risk predict` benchmark (`make bench-predict`): writes benchmarks/predict.json and .md.

1. Trains an XGBoost champion on 20,000 generated customers into a private registry (reused on
   later runs; --retrain to train again), as the tests do.
2. Generates --rows applications with the project's synthetic generator (CSV, reused).
3. The floor, in this process: pyarrow's `read_csv` of the file, then a bare XGBoost
   `inplace_predict` on a float32 matrix of the same rows and the model's width.
4. `credit-risk predict` in a subprocess on the whole file (3 reasons, the default): wall
   time and peak RSS; and its start-up: the same command on a one-row file, the best and the
   median of --startup-runs runs, with this interpreter and, given `--python`, with another
   one (e.g. a virtualenv of the serving and batch extras only:
   `python3 -m venv /tmp/venv-predict && /tmp/venv-predict/bin/pip install -c constraints.txt
   -e '.[serving,batch]'`), the install the start-up goal is for.
5. With --log-rows N: the decision log's size for N rows, `--log` to a JSONL file (one batch
   record plus its rows compressed), against one JSON line per decision.

Goals (issue 22): 1,000,000 rows in at most 30 s and 1.5 GB peak RSS; start-up under 1 s; at
most 2x the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from credit_risk.config import Settings  # noqa: E402

WORK = ROOT / "var" / "bench-predict"


def prepare_model(retrain: bool) -> Settings:
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline.steps import run_all
    from credit_risk.registry.champion import registry_for
    from credit_risk.registry.signing import PRIVATE_FILE, PUBLIC_FILE, generate

    keys = WORK / "keys"
    if not (keys / PRIVATE_FILE).exists():
        generate(keys)
    # Signed, as in production (an unsigned booster is first loaded in a subprocess, ~1 s).
    settings = Settings(data_dir=WORK / "data", runs_dir=WORK / "runs",
                        registry_url=str(WORK / "registry-signed"), models=("xgboost",),
                        decision_log=None, n_customers=20_000, cv_folds=3, search_iterations=1,
                        signing_key_file=keys / PRIVATE_FILE, trusted_keys=(keys / PUBLIC_FILE,))
    registry = registry_for(settings)
    if retrain or registry.alias_version("champion") is None:
        synthetic.ensure_for(settings)
        version = run_all(settings, "bench-predict")
        if registry.alias_version("champion") != version:
            registry.promote(version, "benchmark model", by="bench_predict")
    return settings


def prepare_input(rows: int) -> Path:
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline.ingest import assemble
    from credit_risk.spec.dataset import load_spec

    path = WORK / f"applications-{rows}.csv"
    if not path.exists():
        spec = load_spec("lauki_synthetic")
        apps = assemble(spec, synthetic.generate(rows, seed=11))
        apps.drop(columns=[spec.target.column]).head(rows).to_csv(path, index=False)
    return path


def floor(settings: Settings, path: Path) -> dict[str, float]:
    """pyarrow read_csv, then a bare inplace_predict of the same rows at the model's width."""
    import numpy as np
    import pyarrow.csv as pacsv

    from credit_risk.registry.champion import load_champion, registry_for

    scorer = load_champion(registry_for(settings), None)
    booster = scorer.plan.booster
    assert booster is not None
    booster.set_param({"nthread": os.cpu_count() or 1})  # a bare booster's default: every core
    started, cpu = time.perf_counter(), time.process_time()
    table = pacsv.read_csv(path)
    read_s = time.perf_counter() - started
    read_cpu = time.process_time() - cpu
    import pyarrow as pa

    numeric = [c for c in table.column_names
               if pa.types.is_integer(table.schema.field(c).type)
               or pa.types.is_floating(table.schema.field(c).type)]
    x = np.zeros((table.num_rows, booster.num_features()), dtype=np.float32)
    for j, name in enumerate(numeric[:booster.num_features()]):
        x[:, j] = table.column(name).to_numpy()
    started, cpu = time.perf_counter(), time.process_time()
    booster.inplace_predict(x)
    predict_s = time.perf_counter() - started
    predict_cpu = time.process_time() - cpu
    return {"read_csv_s": read_s, "inplace_predict_s": predict_s, "floor_s": read_s + predict_s,
            "floor_cpu_s": read_cpu + predict_cpu}


def run_predict(settings: Settings, path: Path, out: Path, python: str = sys.executable,
                log: Path | None = None) -> dict[str, float]:
    """One `credit-risk predict` run in a subprocess: wall and CPU time, peak RSS."""
    env = {**os.environ, "CREDIT_RISK_REGISTRY_URL": str(settings.registry.url),
           "CREDIT_RISK_TRUSTED_KEYS": ",".join(map(str, settings.signing.trusted_keys)),
           "CREDIT_RISK_DECISION_LOG": str(log) if log else "none", "PYTHONPATH": str(ROOT)}
    cmd = [python, "-c", "import sys; from credit_risk.cli import main; "
           "sys.exit(main(sys.argv[1:]))", "predict", str(path), "-o", str(out), "-q"]
    cmd += ["--log"] if log else []
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # wait4: this child's own CPU and peak RSS
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if code not in (0, 3):
        raise SystemExit(f"predict failed ({code}): {stderr[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "exit": code}


def startup(settings: Settings, one: Path, python: str, runs: int) -> dict[str, object]:
    """The start-up of `predict` with an interpreter: a one-row file, `runs` times (after one
    unmeasured run that warms the disk cache)."""
    run_predict(settings, one, WORK / "one-out.csv", python)
    times = [run_predict(settings, one, WORK / "one-out.csv", python) for _ in range(runs)]
    walls = sorted(t["wall_s"] for t in times)
    cpus = sorted(t["cpu_s"] for t in times)
    return {"python": python, "runs": runs, "wall_s": walls[0],
            "median_wall_s": statistics.median(walls), "cpu_s": cpus[0],
            "median_cpu_s": statistics.median(cpus)}


def log_size(settings: Settings, path: Path, rows: int,
             python: str = sys.executable) -> dict[str, float]:
    """`predict --log` of the first `rows` rows: the log's bytes (record and rows file)."""
    sample = WORK / f"applications-{rows}-log.csv"
    with path.open() as src, sample.open("w") as dst:
        for _ in range(rows + 1):
            dst.write(src.readline())
    folder = WORK / "log"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    run = run_predict(settings, sample, folder / "out.csv", python,
                      log=folder / "decisions.jsonl")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()
               and p.name != "out.csv")
    return {"rows": rows, "bytes": size, "wall_s": run["wall_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--prepare-only", action="store_true",
                   help="train the model and write the input, measure nothing")
    p.add_argument("--python", default=None, metavar="PYTHON",
                   help="also measure the start-up with this interpreter (e.g. a virtualenv "
                        "of the serving and batch extras only)")
    p.add_argument("--startup-runs", type=int, default=5)
    p.add_argument("--startup-only", action="store_true", help="measure the start-up only")
    p.add_argument("--log-rows", type=int, default=0, metavar="N",
                   help="also measure the decision log's size for N rows with --log")
    args = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    settings = prepare_model(args.retrain)
    path = prepare_input(args.rows)
    if args.prepare_only:
        return
    one = WORK / "one.csv"
    with path.open() as fh:
        one.write_text(fh.readline() + fh.readline())
    load = os.getloadavg()
    starts = {"this": startup(settings, one, sys.executable, args.startup_runs)}
    if args.python:
        starts["given"] = startup(settings, one, args.python, args.startup_runs)
    if args.startup_only:
        print(json.dumps(starts, indent=2))
        return
    python = args.python or sys.executable  # the serving install, when given
    whole = run_predict(settings, path, WORK / "out.csv", python)
    base = floor(settings, path)
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
              "python": platform.python_version(), "rows": args.rows,
              "load_average_at_start": [round(x, 2) for x in load],
              "command": "make bench-predict" + (f" BENCH_ARGS='--python {args.python}'"
                                                 if args.python else ""),
              "startup": starts.get("given", starts["this"]), "startup_all": starts,
              "predict": whole, "floor": base, "x_floor": whole["wall_s"] / base["floor_s"],
              "x_floor_cpu": whole["cpu_s"] / base["floor_cpu_s"],
              "rows_per_s": args.rows / whole["wall_s"]}
    if args.log_rows:
        result["log"] = log_size(settings, path, args.log_rows, python)
    (ROOT / "benchmarks" / "predict.json").write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "benchmarks" / "predict.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    def ok(met: bool) -> str:
        return "met" if met else "not met"

    run, up, base = r["predict"], r["startup"], r["floor"]
    rows = [
        (f"predict, {r['rows']:,} rows, 3 reasons",
         f"{run['wall_s']:.1f} s ({r['rows_per_s']:,.0f} rows/s)",
         f"at most 30 s: {ok(run['wall_s'] <= 30)}"),
        ("peak RSS", f"{run['peak_rss_mb']:,.0f} MB",
         f"at most 1,536 MB: {ok(run['peak_rss_mb'] <= 1536)}"),
        (f"start-up (a one-row file; the model loaded and verified), "
         f"{'the given' if 'given' in r.get('startup_all', {}) else 'this'} interpreter, "
         f"best of {up.get('runs', 1)}",
         f"{up['wall_s']:.2f} s (median {up.get('median_wall_s', up['wall_s']):.2f} s; "
         f"CPU {up.get('cpu_s', 0):.2f} s)",
         f"under 1 s: {ok(up['wall_s'] < 1)}"),
        ("floor: pyarrow `read_csv` + a bare `inplace_predict`",
         f"{base['floor_s']:.1f} s ({base['read_csv_s']:.1f} + {base['inplace_predict_s']:.1f})",
         ""),
        ("predict / floor", f"{r['x_floor']:.1f}x", f"at most 2x: {ok(r['x_floor'] <= 2)}"),
    ]
    if "x_floor_cpu" in r:
        rows += [("CPU time (all threads): predict / floor",
                  f"{run['cpu_s']:.1f} s / {base['floor_cpu_s']:.1f} s = "
                  f"{r['x_floor_cpu']:.1f}x", "less sensitive to a loaded machine")]
    for name, up_ in r.get("startup_all", {}).items():
        if name == "this" and "given" in r["startup_all"]:
            rows += [(f"start-up with {up_['python']} (every extra installed)",
                      f"{up_['wall_s']:.2f} s (median {up_['median_wall_s']:.2f} s; "
                      f"CPU {up_['cpu_s']:.2f} s)", "")]
    if "log" in r:
        rows += [(f"`--log` of {r['log']['rows']:,} rows: the decision log's size",
                  f"{r['log']['bytes'] / 1e6:.1f} MB (one batch record plus its rows, gzip)",
                  "")]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return f"""# `credit-risk predict` on {r['rows']:,} rows

{r['date']}, {r['machine']}, Python {r['python']}; load average at the start
{', '.join(map(str, r['load_average_at_start']))} (a shared machine). Command: `{r['command']}`.

| what | figure | goal |
|---|---|---|
{table}
"""


if __name__ == "__main__":
    main()
