"""The whole training DAG at scale: generated data of 50,000, 200,000 and 1,000,000 customers.

Per size, a child process runs the training DAG's steps in order, in one process, as
`credit-risk train` does (ingest, validate, data_changed, prepare, train per candidate model,
compare, publish; Airflow would run each as a task of its own): the functions of
`credit_risk.pipeline.steps` as they are in the tree when this runs, with the default settings
(all three candidate models). Generating the source CSVs comes first and is timed apart
(it is an explicit step before a run, not a DAG task).

Measured per step: wall time (in the child) and peak RSS of the child's process tree (the child
and every descendant, e.g. joblib workers: psutil, sampled every SAMPLE_S seconds by the parent;
RSS summed over processes counts shared pages once per process). Besides, the child's own
kernel high-water mark (getrusage RUSAGE_SELF) at the end of each step, which no sampling
interval can miss. A size that runs over `--time-limit` is stopped (its whole process group)
and recorded with the steps it finished.

Results: benchmarks/pipeline.json (merged: a run of some sizes keeps the others' results),
benchmarks/pipeline.md (tables, targets) and benchmarks/pipeline.png (time and memory vs size).
Run: `make bench-pipeline`, or `python benchmarks/bench_pipeline.py --sizes 50000 --time-limit 600`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks"
SIZES = (50_000, 200_000, 1_000_000)
SAMPLE_S = 0.1
TIME_LIMIT_S = 1800.0
GB = 1024**3
# The targets on this machine: DAG steps end to end (seconds), peak RSS of the tree.
TARGETS: dict[int, dict[str, float]] = {50_000: {"seconds": 120},
                                        1_000_000: {"seconds": 1200, "peak_rss_gb": 6}}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) / 1024**2 for line in open("/proc/meminfo")
                if line.startswith("MemTotal")), 0.0)
    return (f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB RAM, "
            f"Python {platform.python_version()}")


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip()


def code_state() -> dict[str, Any]:
    """The commit measured, and whether the training code had uncommitted changes then."""
    training = ["credit_risk/pipeline/train.py", "credit_risk/pipeline/features.py",
                "credit_risk/pipeline/steps.py"]
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "training_code_commit": git("log", "-1", "--format=%h %ad %s", "--date=format:%H:%M",
                                     "--", *training)[:80],
            "training_code_uncommitted": bool(git("status", "--porcelain", "--", *training))}


# -- the child: one size, step by step -----------------------------------------------------
def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def child(n: int, work: Path, models: list[str] | None = None) -> None:
    """Run the DAG's steps on n customers in `work`, one JSON line per step on stdout."""
    from credit_risk.config import Settings
    from credit_risk.datasets import synthetic
    from credit_risk.pipeline import steps
    from credit_risk.registry.store import Registry
    from credit_risk.spec.dataset import load_spec

    s = Settings(data_dir=work / "data", runs_dir=work / "runs",
                 registry_url=str(work / "registry"), decision_log=None, n_customers=n,
                 **({"models": tuple(models)} if models else {}))
    _emit({"settings": {"models": list(s.training.models), "cv_folds": s.training.cv_folds,
                        "search_iterations": s.training.search_iterations,
                        "search_time_budget_s": s.training.search_time_budget_s}})
    state: dict[str, Any] = {}

    def step(name: str, fn: Any, *args: Any) -> Any:
        _emit({"start": name})
        t = time.perf_counter()
        value = fn(*args)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        _emit({"end": name, "seconds": time.perf_counter() - t, "self_maxrss": maxrss})
        return value

    spec = load_spec(s.data.spec)
    step("generate data (before the DAG)",
         lambda: synthetic.write(synthetic.generate(n, s.data.seed), s.data.dir / spec.name))
    snapshot = step("ingest", steps.ingest_step, s, "bench")
    step("validate", steps.validate_step, s, snapshot)
    step("data_changed", steps.data_changed_since_champion, s, snapshot)
    split_dir = step("prepare", steps.prepare_step, s, snapshot)
    paths = [step(f"train {m}", steps.train_step, s, split_dir, m) for m in s.training.models]
    comparison = step("compare", steps.evaluate_step, s, split_dir, paths)
    state["version"] = step("publish", steps.publish_step, s, comparison)
    m = Registry(s.registry.url).manifest(state["version"])
    _emit({"result": {"selected": m["model"], "status": m["status"],
                      "candidates": [{"model": c["model"], "cv_roc_auc": c["cv_roc_auc"],
                                      "test_roc_auc": c["test"]["roc_auc"],
                                      "test_ece": c["test"]["ece"]}
                                     for c in m["comparison"]]}})


# -- the parent: run a child per size, sample its process tree ------------------------------
class TreeSampler(threading.Thread):
    """Peak RSS of a process and all its descendants, overall and since the last `mark()`."""

    def __init__(self, pid: int, interval: float = SAMPLE_S):
        super().__init__(daemon=True)
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = self.step_peak = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def _tree_rss(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            rss = self._tree_rss()
            with self._lock:
                self.peak = max(self.peak, rss)
                self.step_peak = max(self.step_peak, rss)
            self._halt.wait(self.interval)

    def mark(self) -> int:
        """The peak since the previous mark (then reset)."""
        rss = self._tree_rss()
        with self._lock:
            peak, self.step_peak = max(self.step_peak, rss), 0
        return peak

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_size(n: int, time_limit: float | None, models: list[str] | None = None
             ) -> dict[str, Any]:
    """One size in a child process: per-step seconds and peak RSS; stopped at the limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_RISK_")}
    env.update(GX_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", SCARF_ANALYTICS="false",
               PYTHONUNBUFFERED="1")
    out: dict[str, Any] = {"n_customers": n, "started": datetime.now(UTC).isoformat(
        timespec="seconds"), "code": code_state(), "steps": {}, "complete": False,
        "time_limit_s": time_limit}
    with tempfile.TemporaryDirectory(prefix=f"bench-pipeline-{n}-") as tmp:
        errlog = Path(tmp) / "child.log"
        with errlog.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", str(n), "--work", tmp,
                 *(["--models", ",".join(models)] if models else [])],
                stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT,
                start_new_session=True)  # its own process group: stopped as a whole
            sampler = TreeSampler(proc.pid)
            sampler.start()
            stopped = threading.Event()

            def stop() -> None:
                stopped.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the child's own group only
                except ProcessLookupError:
                    pass

            timer = threading.Timer(time_limit, stop) if time_limit else None
            if timer:
                timer.start()
            t0 = started = time.perf_counter()
            current = None
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    event = json.loads(line)
                    if "start" in event:
                        sampler.mark()
                        current, started = event["start"], time.perf_counter()
                        print(f"  {n:,}: {current} ...", flush=True)
                    elif "end" in event:
                        out["steps"][event["end"]] = {
                            "seconds": round(event["seconds"], 2),
                            "peak_rss_gb": round(sampler.mark() / GB, 3),
                            "main_process_maxrss_gb": round(event["self_maxrss"] / GB, 3)}
                        print(f"  {n:,}: {event['end']}: {event['seconds']:.1f} s, tree peak "
                              f"{out['steps'][event['end']]['peak_rss_gb']:.2f} GB", flush=True)
                        current = None
                    else:
                        out.update(event)
            except BaseException:  # interrupted: stop the child's group too
                stop()
                raise
            rc = proc.wait()
            wall = time.perf_counter() - t0
            if current is not None:  # stopped or failed inside a step: how far it got
                out["unfinished_step"] = {"name": current,
                                          "seconds": round(time.perf_counter() - started, 1),
                                          "peak_rss_gb": round(sampler.mark() / GB, 3)}
            if timer:
                timer.cancel()
            sampler.stop()
        out["wall_seconds_with_startup"] = round(wall, 1)
        out["peak_rss_gb"] = round(sampler.peak / GB, 3)
        if stopped.is_set():
            out["stopped"] = f"time limit {time_limit:.0f} s reached during: {current}"
        elif rc != 0:
            out["stopped"] = f"exit status {rc} during {current}: " + \
                errlog.read_text(errors="replace")[-2000:]
        else:
            out["complete"] = True
    dag = [k for k in out["steps"] if not k.startswith("generate")]
    out["dag_seconds"] = round(sum(out["steps"][k]["seconds"] for k in dag), 1)
    out["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return out


# -- results ---------------------------------------------------------------------------------
def verdicts(run: dict[str, Any]) -> list[str]:
    target = TARGETS.get(run["n_customers"])
    if not target:
        return []
    out = []
    secs = target["seconds"]
    if run["complete"]:
        ok = run["dag_seconds"] <= secs
        out.append(f"DAG steps end to end {run['dag_seconds']:.0f} s (target <= {secs:.0f} s): "
                   f"{'met' if ok else 'NOT met'}")
    else:
        out.append(f"DAG steps end to end: not finished within the {secs:.0f} s target "
                   f"({run.get('stopped', '')[:120]}): NOT met")
    if "peak_rss_gb" in target:
        ok = run["peak_rss_gb"] <= target["peak_rss_gb"]
        out.append(f"peak RSS {run['peak_rss_gb']:.2f} GB (target <= "
                   f"{target['peak_rss_gb']:.0f} GB): {'met' if ok else 'NOT met'}"
                   + ("" if run["complete"] else " so far (run incomplete)"))
    return out


def write_results(runs: dict[str, dict[str, Any]]) -> None:
    body = {"machine": machine(), "sizes": runs}
    (OUT / "pipeline.json").write_text(json.dumps(body, indent=2))
    ordered = [runs[k] for k in sorted(runs, key=int)]
    md = ["# The training DAG at scale", "",
          f"Machine: {body['machine']}. Measured by `make bench-pipeline` "
          "(benchmarks/bench_pipeline.py): per size, a child process runs the training DAG's "
          "steps in order in one process (as `credit-risk train`), with the default settings, "
          "on generated data; peak RSS is that of the child's whole process tree (sampled every "
          f"{SAMPLE_S} s), plus the main process's kernel high-water mark.", ""]
    for run in ordered:
        n = run["n_customers"]
        s = run.get("settings", {})
        code = run["code"]
        md += [f"## {n:,} customers", "",
               f"Started {run['started']}; commit {code['commit']}; training code at "
               f"`{code['training_code_commit']}`"
               + (" plus uncommitted changes" if code["training_code_uncommitted"] else "")
               + f"; models {', '.join(s.get('models', []))}, {s.get('cv_folds')}-fold CV, "
               f"{s.get('search_iterations')} search trials; 1-minute load average at the end "
               f"{run['load_average_1min_at_end']}.", "",
               "| step | seconds | peak RSS, tree (GB) | main process high-water (GB) |",
               "|---|---:|---:|---:|"]
        md += [f"| {k} | {v['seconds']:.1f} | {v['peak_rss_gb']:.2f} | "
               f"{v['main_process_maxrss_gb']:.2f} |" for k, v in run["steps"].items()]
        md += [f"| **DAG steps (without generating)** | **{run['dag_seconds']:.1f}** | "
               f"**{run['peak_rss_gb']:.2f}** (whole run) | |", ""]
        if not run["complete"]:
            u = run.get("unfinished_step")
            md += [f"**Incomplete**: {run.get('stopped', '')}"
                   + (f" ({u['name']} had run {u['seconds']:.0f} s, peak RSS of the tree in it "
                      f"{u['peak_rss_gb']:.2f} GB)" if u else ""), ""]
        if "result" in run:
            r = run["result"]
            md += [f"Selected {r['selected']} ({r['status']}); test ROC-AUC per candidate: "
                   + ", ".join(f"{c['model']} {c['test_roc_auc']:.4f} (ECE {c['test_ece']:.4f})"
                               for c in r["candidates"]) + ".", ""]
        md += [f"- {v}" for v in verdicts(run)] + ([""] if verdicts(run) else [])
    md += ["## Curve", "", "| customers | DAG seconds | of which training | peak RSS (GB) | "
           "complete |", "|---:|---:|---:|---:|---|"]
    for run in ordered:
        train = sum(v["seconds"] for k, v in run["steps"].items() if k.startswith("train "))
        md.append(f"| {run['n_customers']:,} | {run['dag_seconds']:.0f} | {train:.0f} | "
                  f"{run['peak_rss_gb']:.2f} | {'yes' if run['complete'] else 'no'} |")
    md += ["", "![time and memory vs size](pipeline.png)", ""]
    (OUT / "pipeline.md").write_text("\n".join(md))
    plot(ordered)


def plot(runs: list[dict[str, Any]]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    n = [r["n_customers"] for r in runs]
    steps = sorted({k for r in runs for k in r["steps"]}, key=lambda k: (k.startswith("train"),
                                                                          k))
    for k in steps:
        xs = [r["n_customers"] for r in runs if k in r["steps"]]
        ax1.plot(xs, [r["steps"][k]["seconds"] for r in runs if k in r["steps"]], "o-",
                 label=k, alpha=0.8)
    ax1.plot(n, [r["dag_seconds"] for r in runs], "ks-", label="DAG steps, total")
    ax1.set(xscale="log", yscale="log", xlabel="customers", ylabel="seconds",
            title="Wall time per step")
    ax1.legend(fontsize=6)
    ax2.plot(n, [r["peak_rss_gb"] for r in runs], "ks-")
    ax2.set(xscale="log", xlabel="customers", ylabel="GB", title="Peak RSS, process tree")
    fig.tight_layout()
    fig.savefig(OUT / "pipeline.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="customers per run, comma-separated (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S,
                        help="seconds per size before it is stopped (0: none; default "
                             "%(default)s)")
    parser.add_argument("--models", help="candidate models, comma-separated (default: the "
                        "settings' three; fewer only for a quick look)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = args.models.split(",") if args.models else None
    if args.child:
        child(args.child, args.work, models)
        return
    path = OUT / "pipeline.json"
    runs = json.loads(path.read_text())["sizes"] if path.exists() else {}
    for n in (int(x.replace("_", "")) for x in args.sizes.split(",")):
        print(f"{n:,} customers", flush=True)
        runs[str(n)] = run_size(n, args.time_limit or None, models)
        write_results(runs)  # after each size: a later size stopped keeps the earlier ones
    print((OUT / "pipeline.md").read_text())


if __name__ == "__main__":
    main()
