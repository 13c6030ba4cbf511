"""Flask serving app: web form, JSON API, docs, metrics. Thin: all logic lives in credit_risk."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify

from credit_risk.config import Settings
from credit_risk.records.backends import open_decision_log
from credit_risk.records.decisions import DecisionLog, DecisionLogError
from credit_risk.registry.champion import ModelStore, StoreEvents, registry_for
from credit_risk.scoring.scorer import Scorer
from serving import jsonio, metrics, security
from serving.auth import KeyChecker

RETRY_AFTER_S = 30  # what a client is told to wait on a 503


class ServingFlask(Flask):
    """Flask with `ensure_sync`'s answer kept per function: Flask asks it of every hook and
    view on every request (an `inspect` call each time), and the answer never changes."""

    MAX_KEPT = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_of: dict[Any, Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync_of[func]
        except KeyError:
            sync = super().ensure_sync(func)
            if len(self._sync_of) < self.MAX_KEPT:
                self._sync_of[func] = sync
            return sync
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)


def create_app(settings: Settings | None = None, watch: bool | None = None) -> Flask:
    """Build the app; load the champion now and, if `watch`, poll for a new one. Logging is
    the process's to configure (serving/wsgi.py does), not the factory's."""
    settings = settings or Settings()
    app = ServingFlask(__name__)
    jsonio.install(app)
    app.config.update(MAX_CONTENT_LENGTH=settings.serving.max_request_bytes)
    keys = KeyChecker(settings.serving.api_keys)
    throttle = security.install(app, settings, keys)  # API keys, CSRF, sessions, limits

    def prepare(scorer: Scorer) -> None:
        scorer.n_reasons = settings.serving.n_reasons

    store = ModelStore(registry_for(settings), prepare=prepare,
                       events=StoreEvents(on_swap=metrics.model_swapped,
                                          on_failure=metrics.reload_failed,
                                          on_fallback=metrics.fallback_changed),
                       retry_s=max(settings.serving.reload_interval_s, 5.0))
    store.refresh()
    if watch if watch is not None else settings.serving.reload_interval_s > 0:
        store.watch(settings.serving.reload_interval_s)
    app.extensions["credit_risk"] = {
        "settings": settings,
        "store": store,
        "keys": keys,
        "throttle": throttle,
        "decisions": _decision_log(settings),
        "openapi": {},
        "plain": {},
    }
    metrics.install(app)

    @app.errorhandler(DecisionLogError)
    def decision_log_down(exc: DecisionLogError):
        """Fail closed: no decision is returned that is not in the log."""
        response = jsonify(error="the decision could not be recorded; nothing was decided, "
                                 "try again later")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response, 503

    from serving.api import api
    from serving.web import web

    security.csrf.exempt(api)  # the API takes no cookies: JSON with an API key, not a form
    app.register_blueprint(api)
    app.register_blueprint(web)
    return app


def _decision_log(settings: Settings) -> DecisionLog | None:
    """The configured backend (the database code is imported only for a database URL). With
    CREDIT_RISK_DECISION_LOG_MIGRATE_ON_START the schema is migrated first; a failure there
    is logged and shows in /ready (not ready), it does not stop the worker."""
    decisions = open_decision_log(settings, spooled=True)
    if decisions is not None and settings.decisions.migrate_on_start:
        try:
            decisions.migrate()
        except DecisionLogError as exc:
            logging.getLogger(__name__).error("decision log: %s", exc)
    return decisions
