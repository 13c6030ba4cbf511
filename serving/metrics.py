"""Prometheus metrics: requests and latency by endpoint, method and status, predictions by band,
the loaded model version, reload failures, serving a fallback, decision-log failures and the
spool's unshipped backlog.
Multi-process safe under gunicorn (PROMETHEUS_MULTIPROC_DIR, set by serving/gunicorn.conf.py)."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from credit_risk.scoring.scorer import Scorer

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("credit_risk_http_requests_total", "HTTP requests",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("credit_risk_http_request_duration_seconds", "HTTP request latency",
                    ["endpoint", "method", "status"], buckets=LATENCY_BUCKETS)
PREDICTIONS = Counter("credit_risk_predictions_total", "Scored applications by rating band",
                      ["rating", "risk"])
MODEL_INFO = Gauge("credit_risk_model_info", "The loaded model version (1 = serving)",
                   ["version", "model", "dataset"], multiprocess_mode="liveall")
MODEL_LOADED_AT = Gauge("credit_risk_model_loaded_timestamp_seconds",
                        "When the serving model was loaded", multiprocess_mode="livemax")
RELOAD_FAILURES = Counter("credit_risk_model_reload_failures_total",
                          "Model reloads refused or failed (the last good model kept serving)")

MODEL_FALLBACK = Gauge("credit_risk_model_fallback",
                       "1 while this worker serves a version other than the champion (the "
                       "champion could not be loaded)", multiprocess_mode="liveall")
DECISION_LOG_UNSHIPPED = Gauge("credit_risk_decision_log_unshipped_bytes",
                               "Decisions answered and durable in the spool but not yet in "
                               "PostgreSQL (bytes; read when scraped)",
                               multiprocess_mode="mostrecent")
DECISION_LOG_FAILURES = Counter("credit_risk_decision_log_failures_total",
                                "Decision-log writes that failed (the decisions were not "
                                "returned: 503)")


def _labels(scorer: Scorer) -> tuple[str, str, str]:
    m = scorer.manifest
    return scorer.version, str(m.get("model", "")), str(m.get("dataset", ""))


def model_swapped(old: Scorer | None, new: Scorer) -> None:
    if old is not None:
        MODEL_INFO.labels(*_labels(old)).set(0)
    MODEL_INFO.labels(*_labels(new)).set(1)
    MODEL_LOADED_AT.set(time.time())


def reload_failed(message: str) -> None:
    RELOAD_FAILURES.inc()


def fallback_changed(active: bool) -> None:
    MODEL_FALLBACK.set(1 if active else 0)


def decision_log_failed() -> None:
    DECISION_LOG_FAILURES.inc()


# The methods counted by name; any other (a client may send any token) is counted as "other",
# so a client cannot create series at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


# Labelled children, looked up once: `labels()` takes a lock and checks the values on every
# call. At most MAX_CHILDREN kept (the method and path of a request are the client's to choose).
MAX_CHILDREN = 1000
_bands: dict[tuple[str, str], Any] = {}
_requests: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def _band(rating: str, risk: str) -> Any:
    child = _bands.get((rating, risk))
    if child is None:
        child = PREDICTIONS.labels(rating, risk)
        if len(_bands) < MAX_CHILDREN:
            _bands[rating, risk] = child
    return child


def count_predictions(results: Sequence[dict[str, Any]]) -> None:
    if len(results) == 1:  # the single-row API: no tally
        _band(results[0]["rating"], results[0]["risk"]).inc()
        return
    pairs = zip(map(itemgetter("rating"), results), map(itemgetter("risk"), results),
                strict=True)
    for (band, risk), n in Tally(pairs).items():
        _band(band, risk).inc(n)


def count_request(rule: str, method: str, status: str, seconds: float) -> None:
    """One answered request: counted, and its latency observed."""
    key = (rule, method, status)
    pair = _requests.get(key)
    if pair is None:
        pair = (REQUESTS.labels(*key), LATENCY.labels(*key))
        if len(_requests) < MAX_CHILDREN:
            _requests[key] = pair
    pair[0].inc()
    pair[1].observe(seconds)


def _start() -> None:
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    started = g.pop("started", None)
    if started is not None:
        url_rule = request.url_rule
        count_request("<unmatched>" if url_rule is None else url_rule.rule,
                      method_label(request.method),
                      str(response.status_code), time.perf_counter() - started)
    return response


def _unshipped() -> None:
    """The spool's backlog as the scrape sees it (a decision log without a spool: none)."""
    dlog = current_app.extensions.get("credit_risk", {}).get("decisions")
    pending = getattr(dlog, "pending_bytes", None)
    if pending is None:
        return
    try:
        DECISION_LOG_UNSHIPPED.set(pending())
    except OSError as exc:  # the scrape goes on with the last value; /ready names the error
        log.warning("metrics: the spool's backlog cannot be read: %s", exc)


def exposition() -> Response:
    """The metrics of every worker (multi-process) or of this process."""
    _unshipped()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        from prometheus_client import REGISTRY

        data = generate_latest(REGISTRY)
    return Response(data, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.add_url_rule("/metrics", "metrics", exposition, methods=["GET"])
