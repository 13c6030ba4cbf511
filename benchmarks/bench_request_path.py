"""The single-row request path in process (`make bench-request-path`): where one
POST /api/v1/predict spends its time, and how many requests per second the WSGI app serves
without a server or a network (adds a run to benchmarks/request_path.json and prints its
tables for benchmarks/request_path.md).

1. The XGBoost champion of `make bench-serving` (trained on first use, benchmarks/bench_serving.py).
2. The app as gunicorn runs it: `serving.create_app`, the JSONL decision log on tmpfs,
   Prometheus in multi-process mode (PROMETHEUS_MULTIPROC_DIR, as serving/gunicorn.conf.py).
3. Requests per CPU second through the WSGI callable (a WSGI environ per call, as a server builds it):
   GET /health (constant JSON, the in-process floor), POST /api/v1/predict with 3 reasons,
   without reasons, and with an API key configured.
4. Each step of the default request alone, p50 in microseconds: JSON parse, validation,
   features, model, reasons, results, decision-log write, metrics, response JSON. The request
   minus the steps is Flask's own work (routing, contexts, hooks: auth, CSRF, headers).

Times are CPU time of the benchmark's thread (time.thread_time), so that waiting for a CPU
on a shared machine does not count; caches shared with other work still slow it. The medians
of `--repeats` runs are kept. `--profile N`: also cProfile N requests and print the functions
with the most own time.
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
import orjson  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_serving import cpu_busy, machine, prepare_model, sample_records  # noqa: E402

from credit_risk.config import Settings  # noqa: E402
from credit_risk.registry import Registry  # noqa: E402
from credit_risk.scoring.request import validate_one  # noqa: E402
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
CLOCK = time.thread_time_ns


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


def steps(settings: Settings, bodies: list[bytes], log: Path, calls: int) -> dict[str, float]:
    """p50 us of each step of the default request, alone, and of the whole request."""
    from serving import metrics
    from serving.context import decide  # noqa: F401  (the app's own modules, loaded)

    app = _app(settings, log)
    client = WsgiClient(app)
    scorer = app.extensions["credit_risk"]["store"].scorer
    decisions = app.extensions["credit_risk"]["decisions"]
    plan, fields, rules = scorer.plan, scorer.fields, scorer.rules
    k = len(bodies)
    parsed = [orjson.loads(b) for b in bodies]
    clean = [validate_one(fields, p, rules)[0] for p in parsed]
    prepared = [plan.features.prepare([c]) for c in clean]
    walked = [plan.raw_with_contributions(rows) for rows, _ in prepared]
    pds = [plan.calibrate(raw) for raw, _ in walked]
    reasons = [scorer.explainer.explain(prepared[i][0], [clean[i]], scorer.n_reasons,
                                        walked[i][1]) for i in range(k)]
    results = [scorer._results(pds[i], reasons[i], prepared[i][1]) for i in range(k)]

    def count(i: int) -> None:  # what the app does per request in Prometheus
        metrics.count_predictions(results[i % k])
        child = metrics.REQUESTS.labels(PREDICT, "POST", "200")
        child.inc()
        metrics.LATENCY.labels(PREDICT, "POST", "200").observe(0.0004)

    out = {
        "parse JSON (orjson)": p50_us(lambda i: orjson.loads(bodies[i % k]), calls),
        "validate (fields and rules)": p50_us(
            lambda i: validate_one(fields, parsed[i % k], rules), calls),
        "features (impute, cap, derive, one-hot)": p50_us(
            lambda i: plan.features.prepare([clean[i % k]]), calls),
        "model (tree walk + calibration)": p50_us(
            lambda i: plan.calibrate(plan.raw_with_contributions(prepared[i % k][0])[0]), calls),
        "reasons (rank 3, word them)": p50_us(
            lambda i: scorer.explainer.explain(prepared[i % k][0], [clean[i % k]], 3,
                                               walked[i % k][1]), calls),
        "results (score, band, risk)": p50_us(
            lambda i: scorer._results(pds[i % k], reasons[i % k], prepared[i % k][1]), calls),
        "decision log write (JSONL, tmpfs)": p50_us(
            lambda i: decisions.write("bench", [clean[i % k]], results[i % k]), calls),
        "metrics (Prometheus, multi-process)": p50_us(count, calls),
        "response JSON (orjson)": p50_us(
            lambda i: orjson.dumps({**results[i % k][0], "request_id": "x" * 32},
                                   option=orjson.OPT_SERIALIZE_NUMPY), calls),
    }
    whole = p50_us(lambda i: client.call(PREDICT, bodies[i % k]), calls)
    health = p50_us(lambda i: client.call("/health"), calls)
    out["Flask, auth, CSRF, headers, request id (the rest)"] = whole - sum(out.values())
    out["whole request: POST /api/v1/predict"] = whole
    out["GET /health (for comparison)"] = health
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
    lines += ["", "| step of the default request (alone) | p50 CPU us |", "|---|---:|"]
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
    out = ROOT / "benchmarks" / "request_path.json"
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved[args.label or datetime.now(UTC).strftime("%Y%m%dT%H%M")] = result
    out.write_text(json.dumps(saved, indent=2) + "\n")
    log.unlink(missing_ok=True)
    folder.rmdir()


if __name__ == "__main__":
    main()
