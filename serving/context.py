"""Access to the app's store, settings, decision log and schema cache from a request."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from flask import current_app, request

from credit_risk.config import Settings
from credit_risk.records.decisions import DecisionLog, DecisionLogError
from credit_risk.scoring.champion import ModelStore
from credit_risk.scoring.decide import decide as decide_and_record
from credit_risk.scoring.request import openapi_document
from credit_risk.scoring.scorer import Scorer
from serving import metrics


def _state() -> dict[str, Any]:
    return current_app.extensions["credit_risk"]


def store() -> ModelStore:
    return _state()["store"]


def settings() -> Settings:
    return _state()["settings"]


def scorer_for(reasons: bool = True) -> Scorer | None:
    """The serving scorer; without reasons, a view of the same model that skips them."""
    scorer = store().scorer
    if scorer is None or reasons or not scorer.n_reasons:
        return scorer
    cache = _state()["plain"]
    plain = cache.get(scorer.version)
    if plain is None:
        plain = copy.copy(scorer)  # shares the model; only n_reasons differs
        plain.n_reasons = 0
        cache.clear()
        cache[scorer.version] = plain
    return plain


def openapi() -> dict[str, Any]:
    """The OpenAPI document of the loaded model (built once per version)."""
    scorer = store().scorer
    version = scorer.version if scorer else None
    cache = _state()["openapi"]
    doc = cache.get(version)
    if doc is None:
        s = settings()
        doc = openapi_document(scorer.fields if scorer else [], model_version=version,
                               max_batch_rows=s.serving.max_batch_rows,
                               auth=bool(s.serving.api_keys),
                               max_request_bytes=s.serving.max_request_bytes)
        cache.clear()
        cache[version] = doc
    return doc


def decide(scorer: Scorer, applications: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(request id, results): scored, recorded, counted (credit_risk.scoring.decide); a
    DecisionLogError (counted) when the decisions cannot be recorded: nothing is returned."""
    rid = request_id()
    try:
        return rid, decide_and_record(scorer, applications, decision_log(), rid,
                                      metrics.count_predictions)
    except DecisionLogError:
        metrics.decision_log_failed()
        raise


def decision_log() -> DecisionLog | None:
    return _state()["decisions"]


def request_id() -> str:
    given = request.headers.get("X-Request-ID", "")
    return given[:100] if given.isprintable() and given else uuid.uuid4().hex
