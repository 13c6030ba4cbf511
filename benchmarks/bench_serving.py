"""Serving benchmark (`make bench-serving`): writes benchmarks/serving.json and the "Serving"
section of benchmarks/RESULTS.md.

1. Trains an XGBoost champion on the default 50,000-customer data into a private registry
   (reused on later runs; --retrain to train again).
2. In-process single-row latency: raw `Booster.inplace_predict` on a ready float32 row, our
   fast path (features + model + calibration), full scoring with and without reasons, and the
   seed-style path (one-row DataFrame, scikit-learn preprocessor, `predict_proba`).
3. HTTP under gunicorn (serving/gunicorn.conf.py with its production defaults for every
   server: one sync worker per CPU, OMP_NUM_THREADS=1; CREDIT_RISK_THREADS > 1 for
   gthread workers) with wrk on
   loopback: our API (single and batch, with and without reasons), the seed-style Flask app,
   and a constant-JSON Flask app (the floor);
   then our single-row API held at half its maximum rate for the latency there. With
   --decision-log postgresql+psycopg://..., the production configuration of the image: each
   decision fsync'd in a spool on this disk and shipped to the database; and, for comparison,
   the single-row API committing to the database by group commit without a spool.

Installs nothing: needs `wrk` on PATH (`make wrk`). Every request loop is bounded in time and
only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks" / "serving"
sys.path.insert(0, str(HERE))

from credit_risk.config import ServingSettings, Settings  # noqa: E402
from credit_risk.datasets import synthetic  # noqa: E402
from credit_risk.pipeline.run_paths import RunPaths  # noqa: E402
from credit_risk.pipeline.steps import run_all  # noqa: E402
from credit_risk.registry import Registry  # noqa: E402
from credit_risk.scoring.scorer import Scorer  # noqa: E402
from credit_risk.spec.fields import validate_application  # noqa: E402

RUN_ID = "bench-serving"


def split_dir(settings: Settings) -> Path:
    return RunPaths.for_local_run(settings, RUN_ID).split
TARGETS = {  # issue 12's goals (and the p99 bound of the serving contract)
    "inprocess_p50_ratio": 2.0,     # single row, validate + score + 3 reasons / raw inplace_predict
    "health_ratio": 0.6,            # default response req/s / our own /health req/s, at least
    "seed_speedup": 6.0,            # default response req/s / seed-style req/s, at least
    "p99_half_load_ms": 10.0,       # p99 at half the maximum throughput, at most
    "batch_rows_per_s": 150_000,    # rows/s through the batch API with 3 reasons, at least
    "batch_plain_rows_per_s": 300_000,  # ... without reasons, at least
}
# Issue 21's goals for the production configuration (the decision log in PostgreSQL).
POSTGRES_TARGETS = {**TARGETS, "health_ratio": 0.5, "seed_speedup": 8.0, "p99_half_load_ms": 5.0}


def gunicorn_config() -> str:
    """The worker setup every server of the benchmark runs (serving/gunicorn.conf.py's
    defaults: the production configuration)."""
    serving = ServingSettings()
    workers = serving.workers or len(os.sched_getaffinity(0))
    kind = "gthread" if serving.threads > 1 else "sync"
    return f"{workers} {kind} workers x {serving.threads} thread{'s' * (serving.threads > 1)}"


# -- machine ---------------------------------------------------------------------------------
def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read())[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, TypeError):
        pass
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    found = re.search(r"wrk\s+(\S+)", out)
    wrk = f"wrk {found[1]}" if found else "wrk"
    import gunicorn
    import sklearn
    import xgboost

    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__,
            "flask": importlib.metadata.version("flask"),
            "gunicorn": gunicorn.__version__, "wrk": wrk.strip()}


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all CPUs busy over `seconds` (from /proc/stat)."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return 0.0
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(limit: float = 0.15, max_wait_s: float = 900) -> float:
    """Wait until the machine is idle (other work would skew every number); return the load."""
    deadline = time.time() + max_wait_s
    busy = cpu_busy()
    while busy > limit and time.time() < deadline:
        print(f"  machine {busy:.0%} busy with other work; waiting...", flush=True)
        time.sleep(10)
        busy = cpu_busy()
    return busy


# -- the model and the baseline ----------------------------------------------------------------
def prepare_model(work: Path, retrain: bool) -> tuple[Settings, str]:
    settings = Settings(data_dir=ROOT / "var" / "data", runs_dir=work / "runs",
                        registry_url=str(work / "registry"), models=("xgboost",),
                        decision_log=None, n_customers=50_000)
    registry = Registry(settings.registry.url)
    split = split_dir(settings) / "test.parquet"
    if retrain or registry.alias_version("champion") is None or not split.exists():
        print("training an XGBoost champion on the default 50,000-customer data...", flush=True)
        started = time.perf_counter()
        synthetic.ensure_for(settings)  # generating the data is an explicit step
        version = run_all(settings, RUN_ID)
        if registry.alias_version("champion") != version:
            registry.promote(version, "benchmark model", by="bench_serving")
        print(f"  trained {version} in {time.perf_counter() - started:.0f} s", flush=True)
    version = registry.alias_version("champion")
    assert version is not None
    return settings, version


def _part(settings: Settings, part: str) -> pd.DataFrame:
    df = pd.read_parquet(split_dir(settings) / f"{part}.parquet")
    return df.drop(columns=["__target__"]), df["__target__"].to_numpy(dtype=int)


def sample_records(settings: Settings, scorer: Scorer, n: int) -> list[dict]:
    df, _ = _part(settings, "test")
    names = [f["name"] for f in scorer.fields]
    raw = df[names].astype(object).where(df[names].notna(), None).to_dict("records")
    good = [clean for clean, errors in (validate_application(scorer.fields, r) for r in raw)
            if not errors]
    return (good * (n // len(good) + 1))[:n]


def baseline_artifact(work: Path, settings: Settings, scorer: Scorer) -> Path:
    """Seed-style: a fitted scikit-learn preprocessor and an XGBClassifier with our params."""
    path = work / f"baseline-{scorer.version}.joblib"
    if path.exists():
        return path
    from seed_model import preprocessor
    from xgboost import XGBClassifier

    X, y = _part(settings, "train")
    features = scorer.plan.plan["features"]
    numeric = list(features["features"])
    categorical = [c["name"] for c in features["categorical"]]
    X = X[[c["name"] for c in features["numeric"]] + categorical]
    pre = preprocessor(numeric, categorical).fit(X)
    params = dict(scorer.manifest.get("params", {}))
    kwargs = {"n_estimators": 300, "tree_method": "hist", "n_jobs": os.cpu_count(),
              "subsample": 0.8, "colsample_bytree": 0.8, "eval_metric": "logloss",
              "random_state": 42, **params}  # the champion's own values win
    model = XGBClassifier(**kwargs).fit(pre.transform(X), y)
    joblib.dump({"preprocessor": pre, "model": model, "threshold": scorer.threshold}, path)
    return path


# -- in-process --------------------------------------------------------------------------------
def _latencies(fn, items: list, n: int, warmup: int = 300) -> np.ndarray:
    for i in range(warmup):
        fn(items[i % len(items)])
    out = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        item = items[i % len(items)]
        t0 = clock()
        fn(item)
        out[i] = clock() - t0
    return out / 1000.0  # microseconds


def inprocess(scorer: Scorer, records: list[dict], baseline: Path, n: int) -> dict:
    import seed_model  # noqa: F401

    fast = scorer.plan
    booster = fast.booster
    rows32 = [fast.rows([r]).astype(np.float32) for r in records]
    plain = copy.copy(scorer)
    if hasattr(plain, "n_reasons"):
        plain.n_reasons = 0
    fields = scorer.fields
    art = joblib.load(baseline)
    pre, model = art["preprocessor"], art["model"]
    model.set_params(n_jobs=1)
    cases = {
        "raw Booster.inplace_predict (ready float32 row)": (lambda r: booster.inplace_predict(r),
                                                            rows32),
        "fast path: record -> row -> PD (features, model, calibration)":
            (lambda r: fast.predict(fast.rows([r])), records),
        "scoring: + score, band, risk (no reasons)": (lambda r: plain.score_records([r]), records),
        "validate + scoring (no reasons)":
            (lambda r: plain.score_records([validate_application(fields, r)[0]]), records),
        "validate + scoring with 3 reasons (the API's default)":
            (lambda r: scorer.score_records([validate_application(fields, r)[0]]), records),
        "seed-style: 1-row DataFrame, sklearn preprocessor, predict_proba":
            (lambda r: model.predict_proba(pre.transform(pd.DataFrame([r])))[:, 1],
             records[: max(1, n // 5)]),
    }
    out = {}
    for name, (fn, items) in cases.items():
        count = n if not name.startswith("seed") else max(500, n // 5)
        lat = _latencies(fn, items, count)
        out[name] = {"calls": count, "p50_us": float(np.percentile(lat, 50)),
                     "p99_us": float(np.percentile(lat, 99)), "mean_us": float(lat.mean())}
        print(f"  {name:66s} p50 {out[name]['p50_us']:8.1f} us  "
              f"p99 {out[name]['p99_us']:8.1f} us", flush=True)
    return out


# -- HTTP --------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with serving/gunicorn.conf.py running `app_spec` on a free loopback port."""

    def __init__(self, name: str, app_spec: str, env: dict, pythonpath: Path | None = None):
        self.name = name
        self.port = _free_port()
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "serving" / "gunicorn.conf.py")]
        if pythonpath:
            cmd += ["--pythonpath", str(pythonpath)]
        full_env = {**os.environ, **env, "CREDIT_RISK_BIND": f"127.0.0.1:{self.port}",
                    "CREDIT_RISK_LOG_LEVEL": "warning"}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.proc = subprocess.Popen(cmd + [app_spec], cwd=ROOT, env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait(self, check_path: str, body: bytes, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()}")
            try:
                status, _ = post(self.base + check_path, body)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer 200 on {check_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- CPU per request ---------------------------------------------------------------------------
# Where a request's CPU goes, from /proc: the server's processes (gunicorn's process group),
# PostgreSQL's, wrk's and the whole machine's (the kernel's own threads included).
TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int, int]]:
    """{pid: (command, process group, CPU ticks)} of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        name, rest = raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()
        out[int(entry)] = (name, int(rest[2]), int(rest[11]) + int(rest[12]))
    return out


def _machine_busy() -> int:
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


class CpuMeter:
    """CPU seconds spent during a run by a server's processes, PostgreSQL's, wrk and the
    machine (processes that started during the run count from 0)."""

    def __init__(self, group: int | None):
        self.group = group
        self.before = _processes()
        self.busy = _machine_busy()
        self.children = os.times().children_user + os.times().children_system

    def _spent(self, now: dict, keep) -> float:
        return sum(t - self.before.get(pid, ("", 0, 0))[2]
                   for pid, (name, pgrp, t) in now.items() if keep(name, pgrp)) / TICK

    def stop(self, requests: int) -> dict[str, float]:
        """Microseconds of CPU per request."""
        now = _processes()
        times = os.times()
        per = 1e6 / max(1, requests)
        return {
            "server": self._spent(now, lambda _n, pgrp: pgrp == self.group) * per,
            "postgres": self._spent(now, lambda n, _p: n.startswith("postgres")) * per,
            "wrk": (times.children_user + times.children_system - self.children) * per,
            "machine": (_machine_busy() - self.busy) / TICK * per,
        }


def wrk(url: str, body_file: Path, seconds: float, connections: int,
        delay_ms: float = 0.0, method: str = "POST", server: Server | None = None) -> dict:
    wait_for_quiet()  # the server is idle now: any load is someone else's
    env = {**os.environ, "BODY_FILE": str(body_file), "DELAY_MS": f"{delay_ms:.3f}",
           "METHOD": method}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s",
           "-s", str(HERE / "post.lua"), url]
    meter = CpuMeter(server.proc.pid if server else None)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    r["cpu_us_per_request"] = meter.stop(r["requests"])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["connections"] = connections
    r["delay_ms"] = delay_ms
    return r


def wrk_median(url: str, body_file: Path, seconds: float, connections: int,
               repeats: int, method: str = "POST", server: Server | None = None) -> dict:
    """The run with the median throughput of `repeats` runs (this VM's noise is large)."""
    runs = sorted((wrk(url, body_file, seconds, connections, method=method, server=server)
                   for _ in range(repeats)), key=lambda r: r["rps"])
    best = dict(runs[len(runs) // 2])
    best["rps_runs"] = [round(r["rps"], 1) for r in runs]
    return best


def _show(label: str, r: dict, rows: int = 1) -> None:
    extra = f"  {r['rps'] * rows:,.0f} rows/s" if rows > 1 else ""
    print(f"  {label:44s} {r['rps']:8,.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
          f"p99 {r['p99_us'] / 1000:6.2f} ms  non-2xx {r['non_2xx']}{extra}", flush=True)


def half_load(url: str, body_file: Path, max_rps: float, seconds: float, connections: int,
              base_latency_ms: float) -> dict:
    """wrk with a fixed pause per request, tuned until the rate is about half of max_rps."""
    target = max_rps / 2
    delay = max(0.0, connections / target * 1000 - base_latency_ms)
    result = {}
    for _ in range(4):
        result = wrk(url, body_file, max(3, seconds / 3), connections, delay)
        if abs(result["rps"] / target - 1) < 0.05:
            break
        delay = max(0.0, delay * result["rps"] / target + (result["rps"] / target - 1) * 0.5)
    result = wrk(url, body_file, seconds, connections, delay)
    result["target_rps"] = target
    return result


def _fresh_schema(url: str) -> str:
    """The log's table in a new schema of its own, so every run starts from an empty table
    (earlier runs' rows would make the inserts slower from run to run)."""
    import psycopg
    from sqlalchemy.engine import make_url

    schema = f"bench_{datetime.now(UTC):%Y%m%d%H%M%S}"
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def http(settings: Settings, records: list[dict], baseline: Path, work: Path, seconds: float,
         batch_rows: int, repeats: int, decision_log: str | None = None) -> dict:
    single = work / "single.json"
    single.write_bytes(json.dumps(records[0]).encode())
    batch = work / "batch.json"
    batch.write_bytes(json.dumps({"applications": records[:batch_rows]}).encode())
    # The decision log goes to tmpfs when there is one: at 100,000 rows/s it is ~50 MB/s of
    # lines, which measures this VM's disk rather than the service.
    shm = Path("/dev/shm")
    decisions = (shm if shm.is_dir() else work) / f"credit-risk-bench-{os.getpid()}.jsonl"
    if decision_log:  # e.g. PostgreSQL: the production configuration, in an empty schema
        decision_log = _fresh_schema(decision_log)
        subprocess.run([str(Path(sys.executable).parent / "credit-risk"), "decisions", "migrate"],
                       env={**os.environ, "CREDIT_RISK_DECISION_LOG": decision_log}, check=True)
    # With PostgreSQL, the production configuration (the image's and the compose stack's):
    # each decision fsync'd in a spool on this disk, shipped to the database in the background.
    spool = work / f"spool-{os.getpid()}"
    ours_env = {"CREDIT_RISK_REGISTRY_URL": settings.registry.url,
                "CREDIT_RISK_DECISION_LOG": decision_log or str(decisions),
                "CREDIT_RISK_DECISION_LOG_SPOOL": str(spool),
                "CREDIT_RISK_RELOAD_INTERVAL_S": "10",
                "CREDIT_RISK_MAX_BATCH_ROWS": str(max(10_000, batch_rows))}
    results: dict = {}
    c = 8
    floor = Server("floor", "floor_app:app", {}, HERE)
    try:
        floor.wait("/predict", b"{}")
        results["floor"] = wrk_median(floor.base + "/predict", single, seconds, c, repeats,
                                      server=floor)
        _show("constant-JSON Flask (HTTP floor)", results["floor"])
    finally:
        floor.stop()
    seed = Server("seed", "seed_app:app", {"BASELINE_ARTIFACT": str(baseline)}, HERE)
    try:
        seed.wait("/predict", single.read_bytes())
        results["seed"] = wrk_median(seed.base + "/predict", single, seconds, c, repeats,
                                     server=seed)
        _show("seed-style Flask (DataFrame + sklearn)", results["seed"])
    finally:
        seed.stop()
    ours = Server("ours", "serving.wsgi:app", ours_env)
    try:
        ours.wait("/api/v1/predict", single.read_bytes())
        results["health"] = wrk_median(ours.base + "/health", single, seconds, c, repeats,
                                       method="GET", server=ours)
        _show("ours GET /health (constant JSON, same app)", results["health"])
        url = ours.base + "/api/v1/predict"
        results["single"] = wrk_median(url, single, seconds, c, repeats, server=ours)
        _show("ours /api/v1/predict (with reasons)", results["single"])
        results["single_plain"] = wrk_median(url + "?reasons=false", single, seconds, c,
                                             repeats, server=ours)
        _show("ours /api/v1/predict?reasons=false", results["single_plain"])
        low = wrk(url, single, 3, 1)  # one connection: the latency without queueing
        results["half_load"] = half_load(url, single, results["single"]["rps"], seconds, c,
                                         low["mean_us"] / 1000)
        _show("ours single at half max rate (reasons)", results["half_load"])
        low = wrk(url + "?reasons=false", single, 3, 1)
        results["half_load_plain"] = half_load(url + "?reasons=false", single,
                                               results["single_plain"]["rps"], seconds, c,
                                               low["mean_us"] / 1000)
        _show("ours single at half max rate (no reasons)", results["half_load_plain"])
        burl = ours.base + "/api/v1/predict/batch"
        status, body = post(burl + "?reasons=false", batch.read_bytes())
        assert status == 200 and len(json.loads(body)["results"]) == batch_rows, body[:300]
        results["batch_plain"] = wrk_median(burl + "?reasons=false", batch, seconds, 4, repeats,
                                            server=ours)
        _show(f"ours batch of {batch_rows} (no reasons)", results["batch_plain"], batch_rows)
        results["batch"] = wrk_median(burl, batch, seconds, 4, repeats, server=ours)
        _show(f"ours batch of {batch_rows} (with reasons)", results["batch"], batch_rows)
        for k in ("batch", "batch_plain"):
            results[k]["rows_per_s"] = results[k]["rps"] * batch_rows
            results[k]["rows_per_call"] = batch_rows
    finally:
        ours.stop()
        decisions.unlink(missing_ok=True)
    if decision_log:  # the same without the spool: each request waits for its group's commit
        plain = Server("group-commit", "serving.wsgi:app",
                       {**ours_env, "CREDIT_RISK_DECISION_LOG_SPOOL": "none"})
        try:
            plain.wait("/api/v1/predict", single.read_bytes())
            results["single_group_commit"] = wrk_median(plain.base + "/api/v1/predict", single,
                                                        seconds, c, repeats, server=plain)
            _show("ours /api/v1/predict, group commit, no spool", results["single_group_commit"])
        finally:
            plain.stop()
    shutil.rmtree(spool, ignore_errors=True)
    return results


# -- report ------------------------------------------------------------------------------------
def verdicts(inproc: dict, web: dict,
             t: dict = TARGETS) -> list[tuple[str, str, str, bool]]:
    raw = inproc["raw Booster.inplace_predict (ready float32 row)"]["p50_us"]
    full = inproc["validate + scoring with 3 reasons (the API's default)"]["p50_us"]
    seed, health, ours = web["seed"]["rps"], web["health"]["rps"], web["single"]["rps"]
    half = web["half_load_plain"], web["half_load"]
    return [
        ("In-process single row, validate + score + 3 reasons, p50 vs raw `inplace_predict`",
         f"<= {t['inprocess_p50_ratio']:.0f}x", f"{full / raw:.2f}x ({full:.0f} vs {raw:.0f} us)",
         full / raw <= t["inprocess_p50_ratio"]),
        ("Default response (3 reasons, decision log on) vs our own constant-JSON `/health`",
         f">= {t['health_ratio']}", f"{ours / health:.2f} ({ours:,.0f} / {health:,.0f} req/s)",
         ours / health >= t["health_ratio"]),
        ("... vs the seed-style baseline", f">= {t['seed_speedup']:.0f}x",
         f"{ours / seed:.2f}x ({ours:,.0f} vs {seed:,.0f} req/s)",
         ours / seed >= t["seed_speedup"]),
        ("p99 at half the maximum throughput, no reasons",
         f"<= {t['p99_half_load_ms']:.0f} ms",
         f"{half[0]['p99_us'] / 1000:.2f} ms at {half[0]['rps']:,.0f} req/s",
         half[0]["p99_us"] / 1000 <= t["p99_half_load_ms"]),
        ("... with 3 reasons", f"<= {t['p99_half_load_ms']:.0f} ms",
         f"{half[1]['p99_us'] / 1000:.2f} ms at {half[1]['rps']:,.0f} req/s",
         half[1]["p99_us"] / 1000 <= t["p99_half_load_ms"]),
        ("Rows/s through the batch API with 3 reasons", f">= {t['batch_rows_per_s']:,}",
         f"{web['batch']['rows_per_s']:,.0f}", web["batch"]["rows_per_s"] >= t["batch_rows_per_s"]),
        ("... without reasons", f">= {t['batch_plain_rows_per_s']:,}",
         f"{web['batch_plain']['rows_per_s']:,.0f}",
         web["batch_plain"]["rows_per_s"] >= t["batch_plain_rows_per_s"]),
    ]


def batch_profile(scorer: Scorer, records: list[dict], rows: int = 1000, reps: int = 20) -> dict:
    """Where a batch's time goes, in-process, step by step (microseconds per row)."""
    import orjson

    from credit_risk.scoring.request import validate_many

    option = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def _line(record: dict) -> bytes:  # as the JSONL decision log writes a line
        return orjson.dumps(record, default=str, option=option)

    batch = records[:rows]
    steps: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        for _ in range(reps):
            out = fn()
        steps[name] = (time.perf_counter() - start) / reps / len(batch) * 1e6
        return out

    body = orjson.dumps({"applications": batch})
    timed("parse the JSON body (orjson)", lambda: orjson.loads(body))
    clean = timed("validate (fields, rules)",
                  lambda: validate_many(scorer.fields, batch, scorer.rules))[0]
    feats, _ = timed("features (+ capped/missing warnings)",
                     lambda: scorer.plan.features.prepare(clean))
    raw = timed("model head (XGBoost inplace_predict)", lambda: scorer.plan.predict_raw(feats))
    timed("calibration", lambda: scorer.plan.calibrate(raw))
    per = timed("contributions (path sums: one inplace_predict, margin included)",
                lambda: scorer.explainer.contributions(feats))
    timed("reasons: rank and word (given the contributions)",
          lambda: scorer.explainer.explain(feats, clean, 3, contributions=per))
    results = scorer.score_records(clean)
    timed("decision log lines (orjson)",
          lambda: b"".join(_line({"at": "t", "request_id": "r", "inputs": i, **r})
                           for i, r in zip(clean, results, strict=True)))
    timed("response JSON (orjson)", lambda: orjson.dumps({"results": results}))
    timed("whole score_records (features..results, 3 reasons)",
          lambda: scorer.score_records(clean))
    return {"rows": len(batch), "us_per_row": steps}


def markdown(m: dict, version: str, inproc: dict, web: dict, seconds: float,
             repeats: int, profile: dict, targets: dict = TARGETS) -> str:
    lines = [
        "## Serving",
        "",
        f"Measured by `make bench-serving` (`benchmarks/bench_serving.py`) on {m['date']}: "
        f"{m['nproc']} CPUs ({m['cpu']}), {m['memory']}, Python {m['python']}, XGBoost "
        f"{m['xgboost']}, scikit-learn {m['scikit-learn']}, gunicorn {m['gunicorn']}, "
        f"{m['wrk']}. Model: XGBoost champion `{version}` trained on the default 50,000 "
        "customers. Raw numbers: `benchmarks/serving.json`.",
        "",
        "### Targets",
        "",
        "| Target | Goal | Measured | Met |",
        "|---|---|---|---|",
    ]
    for name, goal, got, ok in verdicts(inproc, web, targets):
        lines.append(f"| {name} | {goal} | {got} | {'yes' if ok else '**no**'} |")
    lines += ["", "### In-process, one application per call", "",
              "| Path | p50 (us) | p99 (us) |", "|---|---|---|"]
    for name, r in inproc.items():
        lines.append(f"| {name} | {r['p50_us']:.1f} | {r['p99_us']:.1f} |")
    lines += ["", f"### HTTP on loopback (gunicorn, {m['gunicorn']}, "
              f"OMP_NUM_THREADS=1; wrk 1 thread; median of {repeats} runs of {seconds:.0f} s)", "",
              "| Server and load | Connections | req/s (range of runs) | rows/s | p50 (ms) "
              "| p99 (ms) | non-2xx |",
              "|---|---|---|---|---|---|---|"]
    labels = {"floor": "constant-JSON Flask (the HTTP floor)",
              "health": "ours `GET /health` (constant JSON, same app and gunicorn config)",
              "seed": "seed-style Flask: 1-row DataFrame, sklearn preprocessor, predict_proba",
              "single_plain": "ours `/api/v1/predict?reasons=false`",
              "single": "ours `/api/v1/predict` (3 reasons, the default)",
              "half_load_plain": "ours, no reasons, held at half its max rate",
              "half_load": "ours, 3 reasons, held at half its max rate",
              "single_group_commit": "ours `/api/v1/predict`, decisions committed to "
                                     "PostgreSQL by group commit, no spool",
              "batch_plain": "ours `/api/v1/predict/batch?reasons=false`",
              "batch": "ours `/api/v1/predict/batch` (3 reasons)"}
    for key, label in labels.items():
        if key not in web:
            continue
        r = web[key]
        rows = r.get("rows_per_call", 1)
        name = f"{label}, {rows:,} rows per call" if rows > 1 else label
        spread = r.get("rps_runs")
        rate = f"{r['rps']:,.0f}" + (f" ({spread[0]:,.0f}-{spread[-1]:,.0f})" if spread else "")
        lines.append(f"| {name} | {r['connections']} | {rate} | {r['rps'] * rows:,.0f} "
                     f"| {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} | {r['non_2xx']} |")
    lines += cpu_table(web, labels)
    if "single_group_commit" in web:
        gc = web["single_group_commit"]["rps"]
        lines += ["", f"Without the spool (group commit), the default response is "
                  f"{gc / web['health']['rps']:.2f} of `/health` and "
                  f"{gc / web['seed']['rps']:.2f}x the seed-style baseline."]
    lines += [
        "",
        "Every server runs under the same `serving/gunicorn.conf.py` and sees the same load. "
        "Ours also appends every decision to the decision log (on tmpfs here, so that the "
        "numbers measure the service rather than this VM's disk) and updates Prometheus "
        "metrics; the baselines do neither. Throughput runs are the median of the repeats "
        "(all runs in `serving.json`). The half-load rows hold the rate with a fixed pause per "
        "request on each connection (wrk's `delay()`), tuned to half the measured maximum; "
        + ("gunicorn's sync workers close the connection after each response, so every request "
           "includes a TCP connect. " if " sync " in m["gunicorn"] else
           "gthread workers keep the connections alive. ")
        + "wrk shares the 2 CPUs with the server.",
        "",
        f"### Where a batch's time goes (in-process, {profile['rows']:,} rows, us per row)",
        "",
        "| Step | us per row |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in profile["us_per_row"].items()],
        "",
    ]
    return "\n".join(lines)


def cpu_table(web: dict, labels: dict[str, str]) -> list[str]:
    """Where each run's CPU went, per request (per row for the batch API)."""
    lines = ["", "CPU per request during the runs above (from /proc; per row for the batch API; "
             "the machine column adds the kernel's own threads and anything else running):", "",
             "| Server and load | server processes (us) | PostgreSQL (us) | wrk (us) "
             "| whole machine (us) |", "|---|---|---|---|---|"]
    for key, label in labels.items():
        cpu = web.get(key, {}).get("cpu_us_per_request")
        if not cpu or key.startswith("half_load"):  # paced runs: the server is not measured
            continue
        rows = web[key].get("rows_per_call", 1)
        lines.append(f"| {label} | " + " | ".join(f"{cpu[k] / rows:,.1f}" for k in
                                                 ("server", "postgres", "wrk", "machine"))
                     + " |")
    health, single = (web.get(k, {}).get("cpu_us_per_request") for k in ("health", "single"))
    if health and single:
        lines += ["", f"By CPU alone the default response costs the machine "
                  f"{single['machine']:,.0f} us against {health['machine']:,.0f} us for "
                  f"`/health`: a ratio of {health['machine'] / single['machine']:.2f} if the "
                  "CPUs were all that limited either."]
    return lines


def write_section(text: str, key: str = "serving") -> Path:
    """Replace only this benchmark's section of benchmarks/RESULTS.md (others own the rest)."""
    path = ROOT / "benchmarks" / "RESULTS.md"
    current = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1]
        current = before + block + after
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)
    return path


def _postgres_wording(text: str) -> str:
    """The production configuration's section: its gunicorn setting and where its log goes."""
    for old, new in (
            ("Raw numbers: `benchmarks/serving.json`",
             "Raw numbers: `benchmarks/serving-postgres.json`"),
            ("appends every decision to the decision log (on tmpfs here, so that the numbers "
             "measure the service rather than this VM's disk)",
             "fsyncs every decision to its spool on this machine's disk before answering (one "
             "fdatasync for the requests waiting in a worker), and a background shipper copies "
             "them to the decision log in PostgreSQL on this machine (synchronous_commit on); "
             "the row \"group commit, no spool\" commits each decision to PostgreSQL before "
             "answering instead (the requests waiting in a worker share one commit)"),):
        text = text.replace(old, new)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-serving")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per load (median)")
    parser.add_argument("--calls", type=int, default=5000, help="per in-process path")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    parser.add_argument("--decision-log", default=None,
                        help="the serving app's decision log (default: a JSONL file on tmpfs), "
                             "e.g. postgresql+psycopg://root@127.0.0.1/test")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `make wrk` (apt-get install wrk)")
    args.work.mkdir(parents=True, exist_ok=True)
    m = machine()
    m["gunicorn"] = gunicorn_config()
    targets = POSTGRES_TARGETS if args.decision_log else TARGETS
    settings, version = prepare_model(args.work, args.retrain)
    registry = Registry(settings.registry.url)
    scorer = Scorer.load(registry, version)
    assert scorer.plan.kind == "xgboost", scorer.plan.kind
    records = sample_records(settings, scorer, 5000)
    baseline = baseline_artifact(args.work, settings, scorer)
    background = {"before_inprocess": wait_for_quiet()}
    print("in-process, one application per call:", flush=True)
    inproc = inprocess(scorer, records, baseline, args.calls)
    background["before_http"] = wait_for_quiet()
    print("HTTP (gunicorn + wrk on loopback):", flush=True)
    web = http(settings, records, baseline, args.work, args.seconds, args.batch_rows,
               args.repeats, args.decision_log)
    background["after"] = cpu_busy()
    print("batch profile:", flush=True)
    profile = batch_profile(scorer, records)
    results = {"machine": m, "model_version": version, "targets": targets,
               "cpu_busy_before_and_after": background,
               "inprocess": inproc, "http": web, "batch_profile": profile,
               "verdicts": [{"target": n, "goal": g, "measured": v, "met": ok}
                            for n, g, v, ok in verdicts(inproc, web, targets)]}
    text = markdown(m, version, inproc, web, args.seconds, args.repeats, profile, targets)
    key = "serving"
    if args.decision_log:  # the production configuration: its own section and JSON file
        key = "serving-postgres"
        text = text.replace("## Serving", "## Serving with the decision log in PostgreSQL", 1)
        text = _postgres_wording(text)
        results["decision_log"] = args.decision_log.split("@")[-1]
    print("\n" + text)
    if not args.no_write:
        (ROOT / "benchmarks" / f"{key}.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"written: {write_section(text, key)} and benchmarks/{key}.json")


if __name__ == "__main__":
    main()
