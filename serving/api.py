"""JSON API: /api/v1/predict, /api/v1/predict/batch, /api/v1/model, /health, /ready,
/openapi.json and /docs. Thin: validation, scoring and schemas live in credit_risk."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from credit_risk.scoring.request import validate_many, validate_one
from credit_risk.spec.fields import shown
from serving.context import (
    decide,
    decision_log,
    openapi,
    scorer_for,
    settings,
    store,
)

api = Blueprint("api", __name__, template_folder="templates")


ECHO_CHARS = 100  # an echoed field name or value is cut to this many characters (+ "…")
MAX_FIELD_ERRORS = 100  # at most this many field errors in one error body (a batch's in all)


def _echo(text: str) -> str:
    """An echoed name or reason: cut, and with surrogates, controls and bidi marks escaped (a
    lone surrogate cannot be encoded as UTF-8 JSON)."""
    return shown(text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…")


def _bounded(fields: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The field errors with names and reasons cut to ECHO_CHARS, at most MAX_FIELD_ERRORS of
    them (a batch's by application index, counted over all applications); and how many were
    left out. A client may send a megabyte of key name, or a batch of thousands of bad rows:
    the answer stays small."""
    out: dict[str, Any] = {}
    listed = omitted = 0
    for name, why in fields.items():
        if isinstance(why, dict):
            inner, left = {}, 0
            for k, v in why.items():
                if listed < MAX_FIELD_ERRORS:
                    inner[_echo(str(k))] = _echo(str(v))
                    listed += 1
                else:
                    left += 1
            omitted += left
            if inner:
                out[_echo(str(name))] = inner
        elif listed < MAX_FIELD_ERRORS:
            out[_echo(str(name))] = _echo(str(why))
            listed += 1
        else:
            omitted += 1
    return out, omitted


def error(status: int, message: str, fields: dict[str, Any] | None = None):
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"], omitted = _bounded(fields)
        if omitted:
            body["fields_omitted"] = omitted
    return jsonify(body), status


def unavailable(message: str, **extra: Any):
    from serving import RETRY_AFTER_S

    response = jsonify(error=message, **extra)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response, 503


@api.app_errorhandler(HTTPException)
def http_error(exc: HTTPException):
    if request.path.startswith("/api/") or request.is_json or exc.code == 413:
        response, status = error(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status
    return exc


MALFORMED = object()  # not JSON at all; a JSON `null` body parses to None and is a 422


def _int(digits: str) -> int | float:
    """An integer literal of the standard library's parser: beyond what a float can hold it
    is infinite (the validator says "must be a finite number"), not an error of the parser
    (Python refuses to convert over 4300 digits)."""
    return int(digits) if len(digits) < 300 else float(digits)


def _parse(data: bytes) -> Any:
    """JSON with orjson; what orjson refuses but is still JSON the standard library reads (NaN,
    Infinity, 1e400, integers beyond 64 bits), so the validator names the field."""
    try:
        return current_app.json.loads(data)
    except ValueError:
        try:
            return json.loads(data, parse_int=_int)
        except (ValueError, RecursionError):
            return MALFORMED


def _body_bytes() -> bytes:
    """The request body. With a Content-Length, in one read: `get_data` reads 64 KiB at a time
    and gunicorn copies what it holds on each (a 1 MB batch: ~3 ms of CPU, ~1.7 ms in one read).
    A chunked body: as the body limit's hook read it."""
    length = request.content_length
    if not length:
        return request.get_data(cache=True)
    stream = request.stream
    data = stream.read(length)
    if len(data) < length:  # a server whose input hands the body over in pieces
        parts = [data]
        while length > (got := sum(map(len, parts))) and (more := stream.read(length - got)):
            parts.append(more)
        data = b"".join(parts)
    return data


def _json_body() -> tuple[Any, Any]:
    if not request.is_json:
        return None, error(415, "Content-Type must be application/json")
    # Over the limit: 413 here with a Content-Length, before this for a chunked body
    # (serving.security.install's limit_chunked_body).
    data = _body_bytes()
    body = _parse(data) if data else MALFORMED
    if body is MALFORMED:
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
        return None, unavailable("no model loaded yet")
    return scorer, None


@api.get("/health")
def health():
    return jsonify(status="ok")


@api.get("/ready")
def ready():
    """Ready: a verified model is loaded and decisions can be logged. Says which version
    serves, whether it is a fallback for a champion that cannot be loaded, and why."""
    summary = store().summary()
    log = decision_log()
    log_ok = log is None or log.ok()
    body: dict[str, Any] = {
        "ready": summary["loaded"] and log_ok, "dataset": summary["dataset"],
        "model_version": summary.get("model_version"), "loaded_at": summary.get("loaded_at"),
        "champion": summary["champion"], "fallback": summary["fallback"],
        "fallback_reason": summary["fallback_reason"],
        "champion_retry_in_s": summary["champion_retry_in_s"],
        "reload_failures": summary["reload_failures"], "last_error": summary["last_error"],
        "decision_log": None if log is None else {
            "ok": log_ok, "failures": log.failures,
            "last_error": None if log_ok else log.last_error, **log.status()}}
    return jsonify(body), 200 if body["ready"] else 503


@api.get("/api/v1/model")
def model():
    summary = store().summary()
    return (jsonify(summary), 200) if summary["loaded"] else (jsonify(summary), 503)


@api.get("/openapi.json")
def openapi_json():
    return jsonify(openapi())


@api.get("/docs")
def docs():
    return render_template("docs.html", doc=openapi(), auth=bool(settings().serving.api_keys))


def _body_and_scorer():
    """The request's JSON body and the scorer for it, or the error response."""
    body, err = _json_body()
    if err:
        return None, None, err
    scorer, err = _scorer_or_error()
    return body, scorer, err


@api.post("/api/v1/predict")
def predict():
    body, scorer, err = _body_and_scorer()
    if err:
        return err
    clean, errors = validate_one(scorer.fields, body, scorer.rules)
    if errors:
        return error(422, "invalid application", errors)
    rid, results = decide(scorer, [clean])
    return jsonify({**results[0], "request_id": rid})


@api.post("/api/v1/predict/batch")
def predict_batch():
    body, scorer, err = _body_and_scorer()
    if err:
        return err
    extra = sorted(set(body) - {"applications"}) if isinstance(body, dict) else []
    if extra:
        return error(422, "invalid batch", {k: "unknown field" for k in extra})
    apps = body.get("applications") if isinstance(body, dict) else None
    if not isinstance(apps, list) or not apps:
        return error(422, "body must be {\"applications\": [ ... ]} with at least one")
    limit = settings().serving.max_batch_rows
    if len(apps) > limit:
        return error(413, f"at most {limit} applications per call, got {len(apps)}")
    clean_rows, bad = validate_many(scorer.fields, apps, scorer.rules)
    if bad:
        return error(422, "invalid applications (by index)", bad)
    rid, results = decide(scorer, clean_rows)
    return jsonify(request_id=rid, model_version=scorer.version, results=results)
