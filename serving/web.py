"""The web form at `/`: the same fields and validation as the API, a readable result."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from credit_risk.schema import validate_application
from serving.context import record_decisions, request_id, store

web = Blueprint("web", __name__, template_folder="templates")


def _from_form(fields: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """Form strings to typed values; what does not parse stays a string and fails validation."""
    data: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f["name"], "").strip()
        if raw == "":
            if f["nullable"]:
                data[f["name"]] = None
        elif f["type"] == "category":
            data[f["name"]] = raw
        else:
            try:
                data[f["name"]] = int(raw) if f["type"] == "integer" and raw.lstrip("-").isdigit() \
                    else float(raw)
            except ValueError:
                data[f["name"]] = raw
    return data


@web.route("/", methods=["GET", "POST"])
def form():
    scorer = store().scorer
    if scorer is None:
        return render_template("form.html", fields=[], values={}, errors={}, result=None,
                               unavailable=True), 503
    values: dict[str, Any] = {f["name"]: f["default"] for f in scorer.fields}
    errors: dict[str, str] = {}
    result = None
    status = 200
    if request.method == "POST":
        data = _from_form(scorer.fields, request.form)
        values.update({k: request.form.get(k, "") for k in data})
        clean, errors = validate_application(scorer.fields, data)
        if errors:
            status = 422
        else:
            rid = request_id()
            result = {**scorer.score_records([clean])[0], "request_id": rid}
            record_decisions(rid, [clean], [result])
    return render_template("form.html", fields=scorer.fields, values=values, errors=errors,
                           result=result, unavailable=False, version=scorer.version), status
