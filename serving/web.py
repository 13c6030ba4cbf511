"""The web form at `/`: the same fields and validation as the API, a readable result."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError

from credit_risk.records.decisions import DecisionLogError
from credit_risk.scoring import bands
from credit_risk.scoring.request import APPLICATION_ID, validate_one, value_from_text
from serving.auth import KeyChecker
from serving.context import decide, settings, store
from serving.security import LoginThrottle, client_address

web = Blueprint("web", __name__, template_folder="templates")

def _from_form(fields: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """Form strings to typed values; what does not parse stays a string and fails validation."""
    data: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f["name"], "").strip()
        if raw:
            data[f["name"]] = value_from_text(f, raw)
        elif f["nullable"]:
            data[f["name"]] = None
    return data


def _point(score: float, low: float, high: float,
           radius: float = 80.0) -> tuple[float, float]:
    t = (min(max(score, low), high) - low) / (high - low)
    return (round(100 - radius * math.cos(math.pi * t), 2),
            round(100 - radius * math.sin(math.pi * t), 2))


def gauge(score: int, low: float, high: float) -> dict[str, Any]:
    """SVG pieces of a half-circle gauge over the score scale [low, high] with the rating
    bands of `credit_risk.scoring.bands`."""
    arcs = []
    for band in bands.on_scale(low, high):
        (x1, y1), (x2, y2) = _point(band["low"], low, high), _point(band["high"], low, high)
        arcs.append({"d": f"M {x1} {y1} A 80 80 0 0 1 {x2} {y2}", "colour": band["colour"],
                     "name": band["name"]})
    x, y = _point(score, low, high, 62)
    return {"arcs": arcs, "needle": {"x": x, "y": y}, "low": low, "high": high}


@web.app_template_filter("num")
def num(value: float) -> str:
    """1200000 -> 1,200,000; 0.5 -> 0.5."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"


def _keys() -> KeyChecker:
    return current_app.extensions["credit_risk"]["keys"]


def _throttle() -> LoginThrottle:
    return current_app.extensions["credit_risk"]["throttle"]


def _session_valid() -> bool:
    """A login of a still-configured key, younger than the session lifetime (checked here,
    on the server: a kept cookie does not outlive it)."""
    started = session.get("since")
    if not isinstance(started, (int, float)):
        return False
    age = time.time() - started
    return 0 <= age < settings().serving.form_session_minutes * 60 \
        and _keys().valid_session(session.get("form"))


def _gate():
    """Apply the form's policy: open, behind an API-key login, or disabled."""
    policy = settings().serving.form_auth
    if policy == "disabled":
        abort(404)
    if policy == "api_key" and not _session_valid():
        session.pop("form", None)
        session.pop("since", None)
        return redirect(url_for("web.login"))
    return None


def _page(status: int, title: str, message: str, retry_after: int | None = None):
    response = current_app.make_response((render_template(
        "error.html", title=title, message=message), status))
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@web.app_errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    return _page(400, "The form has expired",
                 "This page was open too long or was not sent from this site "
                 f"({exc.description}). Go back, reload the page and submit again.")


@web.route("/login", methods=["GET", "POST"])
def login():
    if settings().serving.form_auth != "api_key":
        return redirect(url_for("web.form"))
    error = None
    if request.method == "POST":
        client = client_address()
        wait = _throttle().wait(client)
        if wait > 0:
            return _page(429, "Too many failed logins",
                         f"Too many failed logins. Try again in {math.ceil(wait)} seconds.",
                         retry_after=math.ceil(wait))
        key = request.form.get("api_key", "")
        if _keys().valid(key):
            _throttle().succeeded(client)
            session.clear()
            session.permanent = True  # the cookie expires with the server-side lifetime
            session["form"] = _keys().session_token(key)
            session["since"] = time.time()
            return redirect(url_for("web.form"))
        _throttle().failed(client)
        error = "That API key is not valid."
    return render_template("login.html", error=error), 401 if error else 200


@web.post("/logout")
def logout():
    session.clear()
    logs_in = settings().serving.form_auth == "api_key"
    return redirect(url_for("web.login" if logs_in else "web.form"))


@web.route("/", methods=["GET", "POST"])
def form():
    gate = _gate()
    if gate is not None:
        return gate
    scorer = store().scorer
    logged_in = settings().serving.form_auth == "api_key"
    if scorer is None:
        return render_template("form.html", fields=[], values={}, errors={}, result=None,
                               unavailable=True, logged_in=logged_in), 503
    values: dict[str, Any] = {f["name"]: f["default"] for f in scorer.fields}
    with_id = all(f["name"] != APPLICATION_ID for f in scorer.fields)
    errors: dict[str, str] = {}
    result = None
    status = 200
    if request.method == "POST":
        data = _from_form(scorer.fields, request.form)
        values.update({k: request.form.get(k, "") for k in data})
        app_id = request.form.get(APPLICATION_ID, "").strip()
        if app_id and with_id:  # optional: recorded with the decision, not scored
            data[APPLICATION_ID] = values[APPLICATION_ID] = app_id
        clean, errors = validate_one(scorer.fields, data, scorer.rules)
        if errors:
            status = 422
        else:
            try:
                rid, results = decide(scorer, [clean])
            except DecisionLogError:  # fail closed: an unrecorded decision is not shown
                from serving import RETRY_AFTER_S

                return _page(503, "Not available right now",
                             "The decision could not be recorded, so none was made. Nothing "
                             "was lost on your side: go back and submit again in a minute.",
                             retry_after=RETRY_AFTER_S)
            result = {**results[0], "request_id": rid}
    return render_template("form.html", fields=scorer.fields, values=values, errors=errors,
                           labels={f["name"]: f["label"] for f in scorer.fields},
                           result=result, unavailable=False, version=scorer.version,
                           gauge=gauge(result["credit_score"], scorer.scaling.min_score,
                                       scorer.scaling.max_score) if result else None,
                           grade_pds=scorer.plan.master_scale.bounds(result["grade"])
                           if result else None,
                           bands=bands.on_scale(scorer.scaling.min_score,
                                                scorer.scaling.max_score),
                           logged_in=logged_in, with_application_id=with_id), status
