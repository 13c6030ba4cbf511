"""The serving API's schemas: request models generated from a model's input fields, response
models, the OpenAPI document, and a fast validator for batches.

The input fields come from the dataset spec (`credit_risk.spec.fields.input_fields`), so a new spec
gives a new request schema with nothing else to write. Validation messages stay those of
`credit_risk.spec.fields.validate_application`; the pydantic models and the batch fast path
derive from the same `credit_risk.spec.fields.Constraints`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from credit_risk.scoring.bands import Rating
from credit_risk.spec.expressions import parse_expression
from credit_risk.spec.fields import (
    Constraints,
    broken_rules,
    constraints_of,
    nfc,
    rule_violations,
    text_error,
    validate_application,
)

REF = "#/components/schemas/{model}"

# An optional id of the application (not a model input): recorded with the decision as
# inputs.application_id, so observed outcomes can be joined to it (performance monitoring).
APPLICATION_ID = "application_id"
APPLICATION_ID_CHARS = 100
# No control characters, no bidirectional marks (as `text_error`); recorded as sent, so it
# must also be in Unicode normal form NFC (one spelling per id for joining outcomes later).
APPLICATION_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+$"


# -- request ---------------------------------------------------------------------------
def _description(field: Mapping[str, Any]) -> str:
    parts = [(field.get("description") or field["label"]).rstrip(".") + "."]
    if field.get("unit"):
        parts.append(f"Unit: {field['unit']}.")
    if field["nullable"]:
        parts.append("May be null (unknown).")
    return " ".join(p for p in parts if p)


def application_model(fields: Sequence[Mapping[str, Any]]) -> type[BaseModel]:
    """A pydantic model of one application: every field required, nothing else allowed."""
    definitions: dict[str, Any] = {}
    for i, f in enumerate(fields):
        example = f.get("default")
        definitions[f"f{i}"] = (Constraints.of_field(f).annotation(), Field(
            ..., alias=f["name"], title=f["label"], description=_description(f),
            examples=[example] if example is not None else None))
    if not any(f["name"] == APPLICATION_ID for f in fields):
        definitions["application_id"] = (str | None, Field(
            None, alias=APPLICATION_ID, title="Application id", min_length=1,
            max_length=APPLICATION_ID_CHARS, pattern=APPLICATION_ID_PATTERN,
            description="Optional: your id of this application (not scored), recorded with "
                        "the decision so that its observed outcome can be joined to it. "
                        "Unicode NFC, no control characters or bidirectional marks.",
            examples=["L0012345"]))
    return create_model(
        "Application", __config__=ConfigDict(extra="forbid", populate_by_name=False),
        **definitions)


# -- responses ---------------------------------------------------------------------------
class Reason(BaseModel):
    """A feature pushing this applicant's PD up."""

    model_config = ConfigDict(extra="allow")
    feature: str
    label: str | None = None
    value: Any = None
    impact: float | None = None
    text: str | None = None


class InputWarning(BaseModel):
    """An input not scored as sent: beyond the training range (scored at the range's edge) or
    missing (scored as the typical value of the training data)."""

    field: str
    value: float | None = Field(description="The value sent (null: missing).")
    used: float | str | None = Field(description="The value scored.")
    message: str


class Prediction(BaseModel):
    probability_of_default: float = Field(ge=0, le=1)
    risk: Literal["High", "Low"]
    credit_score: int
    rating: Rating
    grade: str = Field(description="The rating grade of the PD on the model's master scale "
                                   "(grade 1 the safest on the default scale).")
    reasons: list[Reason | str] | None = Field(
        None, description="The main features raising the PD, most important first.")
    warnings: list[InputWarning] | None = Field(
        None, description="Inputs capped to the training range (possibly none).")
    model_version: str


class PredictionResponse(Prediction):
    request_id: str


class BatchResponse(BaseModel):
    request_id: str
    model_version: str
    results: list[Prediction]


class Error(BaseModel):
    error: str
    fields: dict[str, str | dict[str, str]] | None = Field(
        None, description="Each bad field and why (for a batch: by application index); names "
                          "and reasons cut to 100 characters, at most 100 listed.")
    fields_omitted: int | None = Field(
        None, description="How many more bad fields there were than are listed.")


class Health(BaseModel):
    status: Literal["ok"]


class DecisionLogStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool
    failures: int
    last_error: str | None = None


class Ready(BaseModel):
    """Ready: a verified model is loaded and decisions can be logged."""

    model_config = ConfigDict(extra="allow")
    ready: bool
    model_version: str | None = Field(None, description="The version serving.")
    champion: str | None = Field(None, description="The champion alias's version.")
    fallback: bool = Field(False, description=(
        "Serving another version because the champion could not be loaded (retried)."))
    fallback_reason: str | None = None
    last_error: str | None = None
    decision_log: DecisionLogStatus | None = None


class ModelSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    loaded: bool
    model_version: str | None = None
    inputs: list[dict[str, Any]] | None = None
    master_scale: list[dict[str, Any]] | None = Field(
        None, description="The model's rating grades, safest first, each with its upper PD "
                          "bound `max_pd` (a grade holds PDs from the previous bound up to its "
                          "own; the last includes 1).")
    reload_failures: int
    last_error: str | None = None


def _batch_model(app: type[BaseModel], max_rows: int) -> type[BaseModel]:
    return create_model(
        "BatchRequest", __config__=ConfigDict(extra="forbid"),
        applications=(list[app], Field(..., min_length=1, max_length=max_rows)))  # type: ignore[valid-type]


# -- the OpenAPI document -----------------------------------------------------------------
def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=ref)}}}


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again",
                               "schema": {"type": "integer", "minimum": 0}}}


def _errors(*codes: int) -> dict[str, Any]:
    why = {400: "Malformed JSON", 401: "Missing or wrong API key", 413: "Body or batch too large",
           429: "Too many wrong API keys from this client: wait for Retry-After",
           415: "Content-Type is not application/json", 422: "Invalid fields, each named",
           503: "No model loaded yet, or the decision could not be recorded (nothing was "
                "decided: fail closed)"}
    out: dict[str, Any] = {str(c): {"description": why[c], "content": _json("Error")}
                           for c in codes}
    for code in (429, 503):
        if code in codes:
            out[str(code)]["headers"] = RETRY_AFTER
    return out


def openapi_document(fields: Sequence[Mapping[str, Any]], *, model_version: str | None,
                     max_batch_rows: int, auth: bool, max_request_bytes: int) -> dict[str, Any]:
    """OpenAPI 3.1 document for the current model's input fields."""
    app = application_model(fields)
    batch = _batch_model(app, max_batch_rows)
    models: list[type[BaseModel]] = [app, batch, PredictionResponse, BatchResponse, Error,
                                     Health, Ready, ModelSummary]
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    security: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}] if auth else []
    explain = {"name": "reasons", "in": "query", "required": False,
               "description": "Include the reasons (default true); false is faster.",
               "schema": {"type": "boolean", "default": True}}
    predict_errors = _errors(400, 413, 415, 422, 503, *((401, 429) if auth else ()))

    def op(summary: str, body: str | None, ok: str, errors: dict[str, Any],
           secured: bool = False, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": summary, "responses": {
            "200": {"description": "OK", "content": _json(ok)}, **errors}}
        if body:
            out["requestBody"] = {"required": True, "content": _json(body)}
        if secured and auth:
            out["security"] = security
        out.update(extra)
        return out

    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "credit-risk scoring API", "version": model_version or "no model",
                 "description": (
                     "Probability of default, High/Low risk, credit score, rating and reasons "
                     "for loan applications. The application fields follow the loaded model's "
                     f"dataset spec. Bodies over {max_request_bytes:,} bytes get 413. Text: a "
                     "value holding a lone UTF-16 surrogate, a control character (NUL...) or a "
                     "bidirectional control mark, or longer than its limit, is a 422 naming "
                     "the field; a category matches in Unicode normal form NFC (a decomposed "
                     "spelling is the same category); an application_id must be NFC.")},
        "paths": {
            "/api/v1/predict": {"post": op(
                "Score one application", "Application", "PredictionResponse", predict_errors,
                secured=True, parameters=[explain], operationId="predict")},
            "/api/v1/predict/batch": {"post": op(
                f"Score up to {max_batch_rows:,} applications", "BatchRequest", "BatchResponse",
                predict_errors, secured=True, parameters=[explain], operationId="predict_batch")},
            "/api/v1/model": {"get": op(
                "The loaded model: version, metrics, threshold, input fields", None,
                "ModelSummary", {"503": {"description": "No model loaded yet",
                                         "content": _json("ModelSummary")},
                                 **(_errors(401, 429) if auth else {})},
                secured=True, operationId="model")},
            "/health": {"get": op("Alive", None, "Health", {}, operationId="health")},
            "/ready": {"get": op("A verified model is loaded and decisions can be logged", None,
                                 "Ready", {"503": {
                                     "description": "No model loaded, or the decision log "
                                                    "cannot be written",
                                     "content": _json("Ready")}}, operationId="ready")},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                                 "responses": {"200": {"description": "OK", "content": {
                                     "text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {"schemas": schemas.get("$defs", {})},
    }
    if auth:
        doc["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        }
    return doc


# -- fast validation of many applications --------------------------------------------------
def application_id_error(value: Any) -> str | None:
    """Why an application_id is not acceptable (None: it is, or it is absent)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    why = text_error(value, APPLICATION_ID_CHARS)
    if why:
        return why
    if nfc(value) != value:
        return "must be in Unicode normal form NFC (composed characters)"
    return None


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[+-]?(?:inf|infinity|nan)",
                     re.ASCII | re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?\d{1,18}", re.ASCII)


def value_from_text(field: Mapping[str, Any], text: str) -> Any:
    """A form field's or CSV cell's text as an application value: for a numeric field, the
    number it writes in ASCII (an int when it is a whole number of up to 18 digits), else the
    text as it is (then validation says why: "١٢" or "1_000" is not a number here)."""
    text = text.strip()
    if field["type"] == "category" or not _NUMBER.fullmatch(text):
        return text
    return int(text) if _INTEGER.fullmatch(text) else float(text)


def validate_one(fields: Sequence[Mapping[str, Any]], data: Any,
                 rules: Sequence[Mapping[str, Any]] = ()
                 ) -> tuple[dict[str, Any], dict[str, str]]:
    """`validate_application` plus the optional application_id (kept in the clean values when
    given, so the decision log records it; the scorer reads only the model's fields)."""
    if not isinstance(data, Mapping) or APPLICATION_ID not in data or any(
            f["name"] == APPLICATION_ID for f in fields):
        return validate_application(fields, data, rules)
    app_id = data[APPLICATION_ID]
    clean, errors = validate_application(
        fields, {k: v for k, v in data.items() if k != APPLICATION_ID}, rules)
    why = application_id_error(app_id)
    if why:
        errors = {**errors, APPLICATION_ID: why}
    elif app_id is not None and not errors:
        clean[APPLICATION_ID] = app_id
    return clean, errors


def validate_many(fields: Sequence[Mapping[str, Any]], items: Sequence[Any],
                  rules: Sequence[Mapping[str, Any]] = ()
                  ) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Validate applications: (clean values, {index: {field: why}}).

    Column by column with NumPy when every application is valid (the common case); any doubt
    falls back to `validate_application` per application, which names each bad field.
    """
    if _all_valid(fields, items, rules):
        return list(items), {}
    clean, bad = [], {}
    for i, item in enumerate(items):
        values, errors = validate_one(fields, item, rules)
        if errors:
            bad[str(i)] = errors
        clean.append(values)
    return clean, bad



def _all_valid(fields: Sequence[Mapping[str, Any]], items: Sequence[Any],
               rules: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every application is a dict of exactly the fields (and maybe a good id) whose
    values all pass, checked column by column (`Constraints.all_valid`, the rules on columns).
    False means: ask `validate_one`, which names what is wrong."""
    names = [f["name"] for f in fields]
    if not _exactly_the_fields(names, items):
        return False
    if not items or not names:
        return not any(rule_violations(rules, items))
    # a tuple per application (a value for one field); a KeyError: a field is missing
    cells = map(itemgetter(*names), items)
    try:
        columns = list(zip(*cells, strict=True)) if len(names) > 1 else [tuple(cells)]
    except KeyError:
        return False
    if not all(c.all_valid(column)
               for c, column in zip(constraints_of(fields), columns, strict=True)):
        return False
    by_name = dict(zip(names, columns, strict=True))
    needed = {n for rule in rules for n in parse_expression(rule["check"]).names}
    nothing = [None] * len(items)
    return not broken_rules(rules, {n: by_name.get(n, nothing) for n in needed}, len(items))


def _exactly_the_fields(names: Sequence[str], items: Sequence[Any]) -> bool:
    """Whether every application is a dict of as many keys as there are fields, or one more
    that is a good application_id (together with `_all_valid`'s KeyError for a missing field:
    exactly the fields). By length and type, in C; the ids row by row."""
    if set(map(type, items)) - {dict}:
        return False
    n = len(names)
    sizes = set(map(len, items))
    if sizes <= {n}:
        return True
    if APPLICATION_ID in names or not sizes <= {n, n + 1}:
        return False
    return all(len(item) == n or (type(item.get(APPLICATION_ID)) is str
                                  and application_id_error(item[APPLICATION_ID]) is None)
               for item in items)
