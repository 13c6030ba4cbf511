"""Flask serving app: web form, JSON API, health. Thin: all logic lives in credit_risk."""

from __future__ import annotations

import logging
import os

from flask import Flask

from credit_risk.config import Settings
from credit_risk.decisions import DecisionLog
from credit_risk.model_store import ModelStore
from credit_risk.registry import Registry


def create_app(settings: Settings | None = None, watch: bool | None = None) -> Flask:
    """Build the app; load the champion now and, if `watch`, poll for a new one."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = ModelStore(Registry(settings.registry_url))
    store.refresh()
    if watch if watch is not None else settings.reload_interval_s > 0:
        store.watch(settings.reload_interval_s)
    app.extensions["credit_risk"] = {
        "settings": settings,
        "store": store,
        "decisions": DecisionLog(settings.decision_log) if settings.decision_log else None,
    }
    from serving.api import api
    from serving.web import web

    app.register_blueprint(api)
    app.register_blueprint(web)
    if not app.debug and not os.environ.get("PYTEST_CURRENT_TEST"):
        logging.basicConfig(level=logging.INFO)
    return app
