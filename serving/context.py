"""Access to the app's store, settings and decision log from a request."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, request

from credit_risk.config import Settings
from credit_risk.decisions import DecisionLog
from credit_risk.model_store import ModelStore


def store() -> ModelStore:
    return current_app.extensions["credit_risk"]["store"]


def settings() -> Settings:
    return current_app.extensions["credit_risk"]["settings"]


def record_decisions(request_id: str, inputs: list[dict[str, Any]],
                     results: list[dict[str, Any]]) -> None:
    log: DecisionLog | None = current_app.extensions["credit_risk"]["decisions"]
    if log is not None:
        log.write(request_id, inputs, results)


def request_id() -> str:
    given = request.headers.get("X-Request-ID", "")
    return given[:100] if given.isprintable() and given else uuid.uuid4().hex
