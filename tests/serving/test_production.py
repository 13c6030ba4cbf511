"""Production serving: schemas and OpenAPI, size and type limits, auth, metrics, reasons opt-out."""

import random
import re

import pytest
from pydantic import ValidationError

from credit_risk.scoring.request import application_model, validate_many
from credit_risk.spec.fields import validate_application
from serving import create_app
from tests.serving.servers import metric


def _settings(trained, **update):
    return trained[0].model_copy(update=update)


# -- OpenAPI and docs ------------------------------------------------------------------------
def test_openapi_document_follows_the_model_inputs(client, application):
    doc = client.get("/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    app_schema = schemas["Application"]
    # every model input, required; and the optional application id the decision log keeps
    assert set(app_schema["properties"]) == set(application) | {"application_id"}
    assert set(app_schema["required"]) == set(application)
    assert app_schema["additionalProperties"] is False
    age = app_schema["properties"]["age"]
    assert age["type"] == "integer" and age["minimum"] == 18 and age["title"] == "Age"
    purpose = app_schema["properties"]["loan_purpose"]
    assert purpose["enum"] == ["Home", "Personal", "Auto", "Education"]
    residence = app_schema["properties"]["residence_type"]  # nullable
    assert {"type": "null"} in residence["anyOf"]
    batch = schemas["BatchRequest"]["properties"]["applications"]
    assert batch["maxItems"] == 10_000 and batch["minItems"] == 1
    reasons = schemas["Prediction"]["properties"]["reasons"]
    assert "anyOf" in reasons  # optional list of objects or strings
    for path in ("/api/v1/predict", "/api/v1/predict/batch", "/api/v1/model", "/health",
                 "/ready", "/metrics"):
        assert path in doc["paths"]
    assert "413" in doc["paths"]["/api/v1/predict"]["post"]["responses"]
    assert "securitySchemes" not in doc["components"]


def test_docs_page_is_self_contained(client):
    r = client.get("/docs")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "credit_utilization_ratio" in html
    assert "/api/v1/predict/batch" in html
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"http", html)


def test_pydantic_request_model_agrees_with_the_validator(client, application):
    fields = client.get("/api/v1/model").json["inputs"]
    model = application_model(fields)
    rng = random.Random(3)
    changes = [("age", 12), ("age", 35.5), ("age", "x"), ("income", -1), ("income", None),
               ("residence_type", None), ("loan_purpose", "Boat"), ("employment_status", None),
               ("credit_utilization_ratio", 100.0), ("credit_utilization_ratio", 100.5),
               ("colour", "red"), ("age", 18), ("age", 100)]
    for name, value in changes + [(rng.choice(list(application)), None) for _ in range(10)]:
        candidate = {**application, name: value}
        _, errors = validate_application(fields, candidate)
        try:
            model.model_validate(candidate)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == (not errors), (name, value, errors)


# -- limits and content types ------------------------------------------------------------------
def test_body_over_the_size_limit_is_413_json(trained, application):
    client = create_app(_settings(trained, max_request_bytes=4096), watch=False).test_client()
    big = {"applications": [application] * 50}
    r = client.post("/api/v1/predict/batch", json=big)
    assert r.status_code == 413 and "error" in r.json
    assert client.post("/api/v1/predict", json=application).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_wrong_content_type_is_415_on_both_endpoints(client, content_type):
    for path in ("/api/v1/predict", "/api/v1/predict/batch"):
        r = client.post(path, data="{}", content_type=content_type)
        assert r.status_code == 415 and r.json["error"].startswith("Content-Type")


def test_huge_integer_is_a_4xx_not_a_crash(client, application):
    body = '{"age": 1' + "0" * 400 + "}"
    r = client.post("/api/v1/predict", data=body, content_type="application/json")
    assert 400 <= r.status_code < 500
    _, errors = validate_application(client.get("/api/v1/model").json["inputs"],
                                     {**application, "age": 10 ** 400})
    assert errors == {"age": "must be a finite number"}


# -- batch -------------------------------------------------------------------------------------
def test_fast_batch_validation_matches_per_record_validation(client, application):
    fields = client.get("/api/v1/model").json["inputs"]
    rng = random.Random(5)
    bad_values = [None, "x", True, -1, 10 ** 12, 3.5, float("nan"), float("inf"), "Home", 12]
    valid_batches = 0
    for _ in range(300):
        items = [dict(application) for _ in range(rng.randint(1, 5))]
        for item in items:
            if rng.random() < 0.3:
                item[rng.choice(list(application))] = rng.choice(bad_values)
            if rng.random() < 0.05:
                item.pop(rng.choice(list(application)))
            if rng.random() < 0.05:
                item["extra"] = 1
        clean, bad = validate_many(fields, items)
        expected = {str(i): e for i, (_, e) in
                    enumerate(validate_application(fields, it) for it in items) if e}
        assert bad == expected
        if not bad:  # an all-valid batch: the same clean values
            assert clean == [validate_application(fields, it)[0] for it in items]
            valid_batches += 1
    assert valid_batches >= 50, valid_batches  # both branches were exercised, many times


def test_batch_matches_single_predictions(client, application):
    apps = [{**application, "credit_utilization_ratio": u, "age": a}
            for u, a in [(5, 25), (50, 40), (95, 60), (70, 33)]]
    batch = client.post("/api/v1/predict/batch", json={"applications": apps}).json["results"]
    single = [client.post("/api/v1/predict", json=a).json for a in apps]
    for b, s in zip(batch, single, strict=True):
        assert b["probability_of_default"] == pytest.approx(s["probability_of_default"], rel=1e-12)
        assert (b["credit_score"], b["rating"], b["risk"]) == \
            (s["credit_score"], s["rating"], s["risk"])


def test_reasons_can_be_left_out(client, application):
    full = client.post("/api/v1/predict", json=application).json
    plain = client.post("/api/v1/predict?reasons=false", json=application).json
    assert plain["probability_of_default"] == full["probability_of_default"]
    assert not plain.get("reasons")
    again = client.post("/api/v1/predict", json=application).json
    assert again.get("reasons") == full.get("reasons")  # the plain view did not leak


# -- auth --------------------------------------------------------------------------------------
@pytest.fixture
def secured(trained):
    return create_app(_settings(trained, api_keys=("k-one", "k-two")), watch=False).test_client()


def test_api_key_required_when_configured(secured, application):
    r = secured.post("/api/v1/predict", json=application)
    assert r.status_code == 401 and "API key" in r.json["error"]
    assert "WWW-Authenticate" in r.headers
    assert secured.post("/api/v1/predict", json=application,
                        headers={"X-API-Key": "wrong"}).status_code == 401
    assert secured.post("/api/v1/predict", json=application,
                        headers={"X-API-Key": "k-two"}).status_code == 200
    assert secured.post("/api/v1/predict/batch", json={"applications": [application]},
                        headers={"Authorization": "Bearer k-one"}).status_code == 200
    assert secured.get("/api/v1/model").status_code == 401


def test_open_paths_stay_open_with_auth(secured):
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs", "/"):
        assert secured.get(path).status_code == 200, path
    doc = secured.get("/openapi.json").json
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert doc["paths"]["/api/v1/predict"]["post"]["security"]


def test_api_keys_from_the_environment(monkeypatch):
    from credit_risk.config import Settings

    monkeypatch.setenv("CREDIT_RISK_API_KEYS", "alpha, beta,")
    monkeypatch.setenv("CREDIT_RISK_FORM_AUTH", "api_key")
    s = Settings()
    assert s.serving.api_keys == ("alpha", "beta") and s.serving.form_auth == "api_key"


def test_form_behind_a_login(trained, application, csrf):
    app = create_app(_settings(trained, api_keys=("k-one",), form_auth="api_key"), watch=False)
    client = app.test_client()
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    r = client.post("/login", data={"api_key": "nope", "csrf_token": csrf(client, "/login")})
    assert r.status_code == 401 and "not valid" in r.get_data(as_text=True)
    r = client.post("/login", data={"api_key": "k-one", "csrf_token": csrf(client, "/login")})
    assert r.status_code == 302
    assert "k-one" not in r.headers.get("Set-Cookie", "")
    r = client.post("/", data={**{k: "" if v is None else str(v) for k, v in application.items()},
                               "csrf_token": csrf(client)})
    assert r.status_code == 200 and 'id="pd"' in r.get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf(client)})
    assert client.get("/").status_code == 302
    # a session of a key that is no longer configured is refused
    client.post("/login", data={"api_key": "k-one", "csrf_token": csrf(client, "/login")})
    rotated = create_app(_settings(trained, api_keys=("k-new",), form_auth="api_key"),
                         watch=False)
    rotated.secret_key = app.secret_key
    other = rotated.test_client()
    cookie = client.get_cookie("session")
    other.set_cookie("session", cookie.value)
    assert other.get("/").status_code == 302


def test_form_can_be_disabled(trained):
    client = create_app(_settings(trained, form_auth="disabled"), watch=False).test_client()
    assert client.get("/").status_code == 404
    assert client.get("/health").status_code == 200


# -- metrics -----------------------------------------------------------------------------------
def test_metrics_count_requests_latency_predictions_and_model(client, application, trained):
    before = metric(client, "credit_risk_http_requests_total", endpoint="/api/v1/predict",
                     status="200")
    bands_before = metric(client, "credit_risk_predictions_total")
    client.post("/api/v1/predict", json=application)
    client.post("/api/v1/predict", json={**application, "age": 1})
    client.post("/api/v1/predict/batch", json={"applications": [application] * 3})
    assert metric(client, "credit_risk_http_requests_total", endpoint="/api/v1/predict",
                   status="200") == before + 1
    assert metric(client, "credit_risk_http_requests_total", endpoint="/api/v1/predict",
                   status="422") >= 1
    assert metric(client, "credit_risk_http_request_duration_seconds_count",
                   endpoint="/api/v1/predict/batch", status="200") >= 1
    assert metric(client, "credit_risk_predictions_total") == bands_before + 4
    assert metric(client, "credit_risk_model_info", version=trained[1]) == 1
    text = client.get("/metrics").get_data(as_text=True)
    assert "credit_risk_model_reload_failures_total" in text
    assert 'le="0.005"' in text


def test_overflowing_ratio_is_scored_not_a_crash(client, application):
    """Found by the fuzzer: a loan over a tiny income overflows loan_to_income to infinity."""
    for income in (1e-300, 5e-324):
        r = client.post("/api/v1/predict", json={**application, "income": income})
        assert r.status_code == 200, r.json
        assert 0 <= r.json["probability_of_default"] <= 1


def test_reasons_flag_must_be_a_boolean(client, application):
    r = client.post("/api/v1/predict?reasons=maybe", json=application)
    assert r.status_code == 422 and r.json["fields"] == {"reasons": "must be true or false"}
    assert client.post("/api/v1/predict?reasons=TRUE", json=application).status_code == 200
