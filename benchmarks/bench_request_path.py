"""The single-row request path in process (`make bench-request-path`): where one
POST /api/v1/predict spends its time, and how many requests per second the WSGI app serves
without a server or a network (adds a run to benchmarks/request_path.json and prints its
tables for benchmarks/request_path.md).

1. The XGBoost champion of `make bench-serving` (trained on first use, benchmarks/bench_serving.py).
2. The app as gunicorn runs it: `serving.create_app`, the JSONL decision log on tmpfs,
   Prometheus in multi-process mode (PROMETHEUS_MULTIPROC_DIR, as serving/gunicorn.conf.py).
3. Requests per CPU second through the WSGI callable (a WSGI environ per call, as a server
   builds it): GET /health (constant JSON, the in-process floor), POST /api/v1/predict with
   3 reasons, without reasons, and with an API key configured.
4. Where the default request's time goes: the median microseconds per request of each step,
   timed inside running requests (JSON body, validation, features, model, calibration, reasons,
   results, decision-log write, metrics, request id, response JSON, each request hook: auth,
   body limit, CSRF, metrics, framing headers; the session). The rest is Flask's own work.

Rates are per CPU second of the benchmark's thread (time.thread_time), so that waiting for a
CPU on a shared machine does not count; caches shared with other work still slow it. Steps
inside a request are medians of wall time per request. The medians of `--repeats` runs are kept.
`--profile N`: also cProfile N requests and print the functions with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Prometheus in multi-process mode, as under gunicorn: chosen when prometheus_client is
# imported, so before anything imports it.
_METRICS_DIR = tempfile.mkdtemp(prefix="credit-risk-bench-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _METRICS_DIR

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The repository first: benchmarks/serving (the stand-in apps) must not shadow the `serving` app.
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_serving import cpu_busy, machine, prepare_model, sample_records  # noqa: E402

from credit_risk.config import Settings  # noqa: E402
from credit_risk.registry import Registry  # noqa: E402
from credit_risk.scoring.scorer import Scorer  # noqa: E402

PREDICT = "/api/v1/predict"
API_KEY = "bench-request-path-key"


class WsgiClient:
    """Calls a WSGI app as a server would: a fresh environ per request, the body read whole."""

    def __init__(self, app: Callable, headers: dict[str, str] | None = None):
        self.app = app
        self.headers = {f"HTTP_{k.upper().replace('-', '_')}": v
                        for k, v in (headers or {}).items()}
        self.status = ""

    def _start(self, status: str, headers: list, exc_info: Any = None) -> None:
        self.status = status

    def call(self, path: str, body: bytes | None = None, query: str = "") -> bytes:
        environ = {
            "REQUEST_METHOD": "GET" if body is None else "POST", "SCRIPT_NAME": "",
            "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "50000", "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "bench",
            "HTTP_ACCEPT": "*/*", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body or b""), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            **self.headers}
        if body is not None:
            environ.update(CONTENT_TYPE="application/json", CONTENT_LENGTH=str(len(body)))
        out = self.app(environ, self._start)
        try:
            return b"".join(out)
        finally:
            if hasattr(out, "close"):
                out.close()


def _app(settings: Settings, log: Path, api_key: str | None = None) -> Callable:
    from serving import create_app

    values = {"registry_url": settings.registry.url, "decision_log": log,
              "reload_interval_s": 0}
    if api_key:
        values["api_keys"] = (api_key,)
    return create_app(Settings(**values), watch=False)


# CPU time of this thread, not wall time: on a machine shared with other work, time spent
# waiting for a CPU is not the code's. One process on one thread, as a sync gunicorn worker.
# The steps inside a request in wall time (a CPU clock is a system call), as medians.
CLOCK = time.thread_time_ns
WALL = time.perf_counter_ns  # cheap (no system call): per call, medians


def rate(fn: Callable[[int], Any], seconds: float) -> float:
    """Calls per CPU second of `fn(i)` over about `seconds` of CPU (after a warm-up)."""
    for i in range(200):
        fn(i)
    n, started = 0, CLOCK()
    budget = started + int(seconds * 1e9)
    while True:
        for _ in range(100):
            fn(n)
            n += 1
        now = CLOCK()
        if now >= budget:
            return n / ((now - started) / 1e9)


def p50_us(fn: Callable[[int], Any], calls: int) -> float:
    """The median CPU time of one `fn(i)` call, in microseconds."""
    for i in range(200):
        fn(i)
    out = np.empty(calls)
    clock = CLOCK
    for i in range(calls):
        t0 = clock()
        fn(i)
        out[i] = clock() - t0
    return float(np.median(out)) / 1000.0


def throughput(settings: Settings, bodies: list[bytes], log: Path, seconds: float
               ) -> dict[str, float]:
    """Requests per CPU second through the WSGI app, for each kind of request."""
    plain = WsgiClient(_app(settings, log))
    keyed = WsgiClient(_app(settings, log, API_KEY), {"X-API-Key": API_KEY})
    for client in (plain, keyed):
        client.call(PREDICT, bodies[0])
        assert client.status.startswith("200"), client.status
    k = len(bodies)
    return {
        "GET /health": rate(lambda i: plain.call("/health"), seconds),
        "POST /api/v1/predict (3 reasons)": rate(lambda i: plain.call(PREDICT, bodies[i % k]),
                                                 seconds),
        "POST /api/v1/predict?reasons=false": rate(
            lambda i: plain.call(PREDICT, bodies[i % k], "reasons=false"), seconds),
        "POST /api/v1/predict (3 reasons, API key)": rate(
            lambda i: keyed.call(PREDICT, bodies[i % k]), seconds),
    }


# The steps of a request, timed where they run (a CPU clock around each call), by where the
# code lives: (label, module, attribute). None of them runs inside another.
STEPS = [
    ("JSON body, query, scorer", "serving.api", "_body_and_scorer"),
    ("validation (fields, rules)", "serving.api", "validate_one"),
    ("features (impute, cap, derive, one-hot)", "credit_risk.scoring.features",
     "FeaturePlan.prepare"),
    ("model (tree walk: margin and contributions)", "credit_risk.scoring.plan",
     "ScoringPlan.raw_with_contributions"),
    ("calibration", "credit_risk.scoring.plan", "ScoringPlan.calibrate"),
    ("reasons (rank 3, word them)", "credit_risk.scoring.reasons", "ReasonExplainer.explain"),
    ("results (score, band, risk)", "credit_risk.scoring.scorer", "Scorer._results"),
    ("decision log write (JSONL on tmpfs)", "credit_risk.records.decisions",
     "JsonlDecisionLog.write"),
    ("metrics: predictions by band", "serving.metrics", "count_predictions"),
    ("request id", "serving.context", "request_id"),
    ("response JSON (jsonify)", "serving.api", "jsonify"),
]


class StepClock:
    """Time spent in named functions while requests run (wrapped in place, restored): per
    request, the sum of each label's calls; `medians()` over the requests."""

    def __init__(self) -> None:
        self.current: dict[str, int] = {}
        self.per_request: dict[str, list[int]] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def timed(self, label: str, fn: Callable) -> Callable:
        current, clock = self.current, WALL
        current.setdefault(label, 0)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                current[label] += clock() - t0

        return wrapper

    def next_request(self) -> None:
        for label, ns in self.current.items():
            self.per_request.setdefault(label, []).append(ns)
            self.current[label] = 0

    def medians(self) -> dict[str, float]:
        """Median us per request of each label."""
        return {label: float(np.median(ns)) / 1000 for label, ns in self.per_request.items()}

    def wrap(self, label: str, module: str, attribute: str) -> None:
        import importlib

        owner: Any = importlib.import_module(module)
        *outer, name = attribute.split(".")
        for part in outer:
            owner = getattr(owner, part)
        original = owner.__dict__[name]
        self._undo.append((owner, name, original))
        setattr(owner, name, self.timed(label, original))

    def wrap_hooks(self, app: Any) -> None:
        """The app's before- and after-request hooks and its session interface."""
        for hooks, kind in ((app.before_request_funcs, "before"),
                            (app.after_request_funcs, "after")):
            for key, fns in hooks.items():
                hooks[key] = [self.timed(f"hook: {kind} {f.__name__}", f) for f in fns]
        sessions = app.session_interface
        for name in ("open_session", "save_session"):
            setattr(sessions, name, self.timed("session open and save",
                                               getattr(sessions, name)))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def steps(settings: Settings, bodies: list[bytes], log: Path, calls: int) -> dict[str, float]:
    """Median us per default request of each step, timed inside the running requests (wall
    time per call: a CPU clock costs a system call, more than some steps); the rest is
    Flask's own work (routing, request and app contexts, the response object) and the glue
    between the steps."""
    clock = StepClock()
    for label, module, attribute in STEPS:
        clock.wrap(label, module, attribute)
    try:
        app = _app(settings, log)
        clock.wrap_hooks(app)
        client = WsgiClient(app)
        k = len(bodies)
        for i in range(200):
            client.call(PREDICT, bodies[i % k])
        assert client.status.startswith("200"), client.status
        clock.per_request.clear()
        clock.next_request()
        clock.per_request.clear()
        whole = np.empty(calls)
        for i in range(calls):
            t0 = WALL()
            client.call(PREDICT, bodies[i % k])
            whole[i] = WALL() - t0
            clock.next_request()
    finally:
        clock.restore()
    out = clock.medians()
    timed = float(np.median(whole)) / 1000
    out["Flask itself and the glue (the rest)"] = timed - sum(out.values())
    out["whole request, steps timed (p50)"] = timed
    bare = WsgiClient(_app(settings, log))
    out["whole request, untimed (p50 CPU)"] = p50_us(lambda i: bare.call(PREDICT, bodies[i % k]),
                                                 calls)
    out["GET /health, untimed (p50 CPU)"] = p50_us(lambda i: bare.call("/health"), calls)
    return out


def profile(settings: Settings, bodies: list[bytes], log: Path, n: int, top: int = 30) -> str:
    client = WsgiClient(_app(settings, log))
    for i in range(200):
        client.call(PREDICT, bodies[i % len(bodies)])
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        client.call(PREDICT, bodies[i % len(bodies)])
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def markdown(result: dict) -> str:
    m, t, s = result["machine"], result["throughput"], result["steps"]
    health = t["GET /health"]
    lines = [f"Measured {m['date']} on {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}; "
             f"CPU busy with other work before the run: {result['cpu_busy_before']:.0%}. "
             f"Medians of {result['repeats']} runs.", "",
             "| request (WSGI, in process) | req per CPU s | vs GET /health |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:,.0f} | {v / health:.2f} |" for k, v in t.items()]
    lines += ["", "| step of the default request (in the request) | p50 us |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in s.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-serving")
    parser.add_argument("--seconds", type=float, default=3.0, help="per req/s measurement")
    parser.add_argument("--calls", type=int, default=3000, help="per step timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile N default requests")
    parser.add_argument("--label", default="", help="a name for this run in the JSON")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "request_path.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    settings, version = prepare_model(args.work, retrain=False)
    scorer = Scorer.load(Registry(settings.registry.url), version)
    bodies = [json.dumps(r).encode() for r in sample_records(settings, scorer, 500)]
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="credit-risk-bench-", dir=shm if shm.is_dir() else None))
    log = folder / "decisions.jsonl"
    busy = cpu_busy()
    runs_t, runs_s = [], []
    for r in range(args.repeats):
        runs_t.append(throughput(settings, bodies, log, args.seconds))
        runs_s.append(steps(settings, bodies, log, args.calls))
        log.unlink(missing_ok=True)
        print(f"run {r + 1}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in runs_t[-1].items()),
              flush=True)
    result = {"machine": machine(), "model_version": version, "label": args.label,
              "cpu_busy_before": busy, "repeats": args.repeats,
              "throughput": _median(runs_t), "steps": _median(runs_s)}
    text = markdown(result)
    print(text)
    if args.profile:
        print(profile(settings, bodies, log, args.profile))
    out = args.out
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved.setdefault("runs", {})[args.label or datetime.now(UTC).strftime("%Y%m%dT%H%M")] = result
    out.write_text(json.dumps(saved, indent=2) + "\n")
    log.unlink(missing_ok=True)
    folder.rmdir()


if __name__ == "__main__":
    main()
