"""JSON API: /api/v1/predict, /api/v1/predict/batch, /api/v1/model, /health, /ready,
/openapi.json and /docs. Thin: validation, scoring and schemas live in credit_risk."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from credit_risk.api_schema import validate_many
from credit_risk.schema import validate_application
from serving import metrics
from serving.context import openapi, record_decisions, request_id, scorer_for, settings, store

api = Blueprint("api", __name__, template_folder="templates")


def error(status: int, message: str, fields: dict[str, Any] | None = None):
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    return jsonify(body), status


@api.app_errorhandler(HTTPException)
def http_error(exc: HTTPException):
    if request.path.startswith("/api/") or request.is_json or exc.code == 413:
        return error(exc.code or 500, exc.description or exc.name)
    return exc


def _json_body() -> tuple[Any, Any]:
    if not request.is_json:
        return None, error(415, "Content-Type must be application/json")
    body = request.get_json(silent=True)  # a body over the size limit raises 413 here
    if body is None:
        return None, error(400, "malformed JSON body")
    return body, None


FLAGS = {"true": True, "1": True, "false": False, "0": False}


def _scorer_or_error():
    """The scorer for this request (with or without reasons), or the error response."""
    flag = FLAGS.get(request.args.get("reasons", "true").lower())
    if flag is None:
        return None, error(422, "invalid query", {"reasons": "must be true or false"})
    scorer = scorer_for(flag)
    if scorer is None:
        return None, error(503, "no model loaded yet")
    return scorer, None


@api.get("/health")
def health():
    return jsonify(status="ok")


@api.get("/ready")
def ready():
    summary = store().summary()
    if not summary["loaded"]:
        return jsonify(ready=False, last_error=summary["last_error"]), 503
    return jsonify(ready=True, model_version=summary["model_version"],
                   loaded_at=summary["loaded_at"], reload_failures=summary["reload_failures"],
                   last_error=summary["last_error"])


@api.get("/api/v1/model")
def model():
    summary = store().summary()
    return (jsonify(summary), 200) if summary["loaded"] else (jsonify(summary), 503)


@api.get("/openapi.json")
def openapi_json():
    return jsonify(openapi())


@api.get("/docs")
def docs():
    return render_template("docs.html", doc=openapi(), auth=bool(settings().api_keys))


def _body_and_scorer():
    """The request's JSON body and the scorer for it, or the error response."""
    body, err = _json_body()
    if err:
        return None, None, err
    scorer, err = _scorer_or_error()
    return body, scorer, err


def _decide(scorer, rows):
    """Score valid applications, log and count the decisions; (request id, results)."""
    rid = request_id()
    results = scorer.score_records(rows)
    record_decisions(rid, rows, results)
    metrics.count_predictions(results)
    return rid, results


@api.post("/api/v1/predict")
def predict():
    body, scorer, err = _body_and_scorer()
    if err:
        return err
    clean, errors = validate_application(scorer.fields, body, scorer.rules)
    if errors:
        return error(422, "invalid application", errors)
    rid, results = _decide(scorer, [clean])
    return jsonify({**results[0], "request_id": rid})


@api.post("/api/v1/predict/batch")
def predict_batch():
    body, scorer, err = _body_and_scorer()
    if err:
        return err
    apps = body.get("applications") if isinstance(body, dict) else None
    if not isinstance(apps, list) or not apps:
        return error(422, "body must be {\"applications\": [ ... ]} with at least one")
    limit = settings().max_batch_rows
    if len(apps) > limit:
        return error(413, f"at most {limit} applications per call, got {len(apps)}")
    clean_rows, bad = validate_many(scorer.fields, apps, scorer.rules)
    if bad:
        return error(422, "invalid applications (by index)", bad)
    rid, results = _decide(scorer, clean_rows)
    return jsonify(request_id=rid, model_version=scorer.version, results=results)
