"""The batch API request in process: rows per CPU second of a whole
POST /api/v1/predict/batch (1,000 rows, JSONL decision log on tmpfs, Prometheus in
multi-process mode, frozen out of the garbage collector's full passes where the checkout's
serving/wsgi.py does so: as gunicorn runs the app) with 3 reasons and without, and where its
time goes step by step (benchmarks/batch.md, "The batch API request (issue 21)").

Uses `make bench-serving`'s XGBoost champion (trained on first use, benchmarks/bench_serving.py)
and the WSGI client of benchmarks/bench_request_path.py. Rates are per CPU second of this
thread (time.thread_time): waiting for a CPU on a shared machine does not count. Steps are
medians of wall time per request, timed inside running requests. Only the app's public
route is called, so the script also measures an older checkout:
`PYTHONPATH=<checkout> python benchmarks/bench_batch_request.py`.
`--profile N`: also cProfile N requests and print the functions with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import json
import os
import pstats
import sys
import tempfile
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

# sets PROMETHEUS_MULTIPROC_DIR (multi-process metrics, as under gunicorn) before the app loads
from bench_request_path import CLOCK, WALL, StepClock, WsgiClient, _app  # noqa: E402
from bench_serving import machine, prepare_model, sample_records  # noqa: E402

from credit_risk.registry import Registry  # noqa: E402
from credit_risk.scoring.scorer import Scorer  # noqa: E402

BATCH = "/api/v1/predict/batch"


def wsgi_app(settings, log: Path):
    """The app as the checkout's serving/wsgi.py leaves it under gunicorn (frozen out of the
    garbage collector's full passes when it does so)."""
    app = _app(settings, log)
    spec = importlib.util.find_spec("serving.wsgi")
    if spec and spec.origin and "gc.freeze()" in Path(spec.origin).read_text():
        gc.collect()
        gc.freeze()
    return app

# The steps of a batch request, where the code lives: (label, module, attribute); a step
# whose function a checkout does not have is left out. None runs inside another, except the
# decision log's parts, inside its write.
STEPS = [
    ("JSON body, query, scorer", "serving.api", "_body_and_scorer"),
    ("validation (validate_many)", "serving.api", "validate_many"),
    ("features", "credit_risk.scoring.features", "FeaturePlan.prepare"),
    ("model: margin and contributions", "credit_risk.scoring.reasons",
     "ReasonExplainer.raw_and_contributions"),
    ("model: margin (no reasons)", "credit_risk.scoring.plan",
     "ScoringPlan.raw_with_contributions"),
    ("calibration", "credit_risk.scoring.plan", "ScoringPlan.calibrate"),
    ("reasons: rank and word", "credit_risk.scoring.reasons", "ReasonExplainer.explain"),
    ("results (score, band, grade)", "credit_risk.scoring.scorer", "Scorer._results"),
    ("decision log write (whole)", "credit_risk.records.decisions", "JsonlDecisionLog.write"),
    ("  of which: the file append", "credit_risk.records.jsonl", "JsonlFile.append"),
    ("metrics: predictions by band", "serving.metrics", "count_predictions"),
    ("response JSON (jsonify)", "serving.api", "jsonify"),
]


def _has(module: str, attribute: str) -> bool:
    owner: object = importlib.import_module(module)
    for part in attribute.split("."):
        owner = getattr(owner, part, None)
        if owner is None:
            return False
    return True


def rows_per_cpu_s(client: WsgiClient, body: bytes, rows: int, query: str, calls: int) -> float:
    """Rows per CPU second of this thread over `calls` requests (after a warm-up)."""
    for _ in range(5):
        client.call(BATCH, body, query)
    assert client.status.startswith("200"), client.status
    started = CLOCK()
    for _ in range(calls):
        client.call(BATCH, body, query)
    return rows * calls / ((CLOCK() - started) / 1e9)


def steps(settings, body: bytes, rows: int, log: Path, calls: int, query: str
          ) -> dict[str, float]:
    """Median microseconds per row of each step, inside running requests."""
    clock = StepClock()
    for label, module, attribute in STEPS:
        if _has(module, attribute):
            clock.wrap(label, module, attribute)
    try:
        client = WsgiClient(wsgi_app(settings, log))
        for _ in range(5):
            client.call(BATCH, body, query)
        assert client.status.startswith("200"), client.status
        clock.next_request()
        clock.per_request.clear()
        whole = np.empty(calls)
        for i in range(calls):
            t0 = WALL()
            client.call(BATCH, body, query)
            whole[i] = WALL() - t0
            clock.next_request()
    finally:
        clock.restore()
    out = {k: v / rows for k, v in clock.medians().items() if v > 0}
    timed = float(np.median(whole)) / 1000 / rows
    out["Flask and the glue (the rest)"] = timed - sum(
        v for k, v in out.items() if not k.startswith("  "))
    out["whole request (p50 wall, steps timed)"] = timed
    return out


def profile(settings, body: bytes, log: Path, n: int, query: str, top: int = 35) -> str:
    client = WsgiClient(wsgi_app(settings, log))
    for _ in range(5):
        client.call(BATCH, body, query)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        client.call(BATCH, body, query)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


KINDS = {"3 reasons": "", "no reasons": "reasons=false"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=HERE.parent / "var" / "bench-serving")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=60, help="requests per rate measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60, help="requests timed step by step")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    settings, version = prepare_model(args.work, retrain=False)
    scorer = Scorer.load(Registry(settings.registry.url), version)
    body = orjson.dumps({"applications": sample_records(settings, scorer, args.rows)})
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="credit-risk-bench-", dir=shm if shm.is_dir() else None))
    log = folder / "decisions.jsonl"
    client = WsgiClient(wsgi_app(settings, log))
    rates: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(args.repeats):
        for kind, query in KINDS.items():
            rates[kind].append(rows_per_cpu_s(client, body, args.rows, query, args.calls))
        log.unlink(missing_ok=True)
    result = {"machine": machine(), "model_version": version, "rows": args.rows,
              "rows_per_cpu_s": {k: float(np.median(v)) for k, v in rates.items()},
              "runs": rates,
              "steps_us_per_row": {k: steps(settings, body, args.rows, log, args.steps, q)
                                   for k, q in KINDS.items()}}
    log.unlink(missing_ok=True)
    print(json.dumps(result, indent=1))
    if args.profile:
        for kind, query in KINDS.items():
            print(f"--- {kind}")
            print(profile(settings, body, log, args.profile, query))
            log.unlink(missing_ok=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    folder.rmdir()


if __name__ == "__main__":
    main()
