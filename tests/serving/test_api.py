import io
import json

import pytest

from credit_risk.scoring.grades import MasterScale


def test_health_and_ready(client, trained):
    assert client.get("/health").json == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["model_version"] == trained[1]


def test_valid_application(client, application, trained):
    r = client.post("/api/v1/predict", json=application, headers={"X-Request-ID": "abc-1"})
    assert r.status_code == 200
    body = r.json
    assert 0 < body["probability_of_default"] < 1
    assert body["risk"] in ("High", "Low")
    assert 300 <= body["credit_score"] <= 900
    assert body["rating"] in ("Poor", "Average", "Good", "Excellent")
    # the grade of the PD on the master scale the model was trained with (the default one)
    assert body["grade"] == MasterScale.default().grade(body["probability_of_default"])
    scale = client.get("/api/v1/model").json["master_scale"]
    assert scale == MasterScale.default().to_plan()["grades"]
    assert body["model_version"] == trained[1]
    assert body["request_id"] == "abc-1"


def test_request_id_is_generated_and_decision_logged(client, application, trained):
    from credit_risk.records.backends import decision_log_at

    r = client.post("/api/v1/predict", json=application)
    rid = r.json["request_id"]
    assert len(rid) == 32
    logged = [d for d in decision_log_at(trained[0].decisions.url).read() if d["request_id"] == rid]
    assert logged and logged[0]["inputs"]["age"] == application["age"]
    assert logged[0]["probability_of_default"] == r.json["probability_of_default"]


@pytest.mark.parametrize("change,field,why", [
    ({"age": "forty"}, "age", "must be a number"),
    ({"age": 12}, "age", "at least 18"),
    ({"age": 35.5}, "age", "whole number"),
    ({"income": -5}, "income", "at least 0"),
    ({"credit_utilization_ratio": 150}, "credit_utilization_ratio", "at most 100"),
    ({"loan_purpose": "Boat"}, "loan_purpose", "must be one of"),
    ({"loan_purpose": 3}, "loan_purpose", "must be one of"),  # a code, not one of these
    ({"loan_purpose": ["Home"]}, "loan_purpose", "must be a string"),
    ({"loan_purpose": True}, "loan_purpose", "not a boolean"),
    ({"employment_status": None}, "employment_status", "must not be null"),
    ({"age": True}, "age", "must be a number"),
    ({"colour": "red"}, "colour", "unknown field"),
])
def test_invalid_fields_are_named(client, application, change, field, why):
    r = client.post("/api/v1/predict", json={**application, **change})
    assert r.status_code == 422
    assert why in r.json["fields"][field]
    assert list(r.json["fields"]) == [field]


def test_missing_fields_are_all_named(client, application):
    partial = {k: v for k, v in application.items() if k not in ("age", "loan_amount")}
    r = client.post("/api/v1/predict", json=partial)
    assert r.status_code == 422
    assert r.json["fields"] == {"age": "is required", "loan_amount": "is required"}


def test_nullable_field_accepts_null(client, application):
    r = client.post("/api/v1/predict", json={**application, "residence_type": None})
    assert r.status_code == 200


@pytest.mark.parametrize("body", ["{not json", "", "[1, 2", "nan"])
def test_malformed_json_is_400(client, body):
    r = client.post("/api/v1/predict", data=body, content_type="application/json")
    assert r.status_code == 400
    assert r.json["error"] == "malformed JSON body"


@pytest.mark.parametrize("body", ["[]", "42", "\"text\"", "null", "true"])
def test_json_that_is_not_an_object_is_422(client, body):
    """Valid JSON, but not an application: a 422 that says so, never "malformed"."""
    r = client.post("/api/v1/predict", data=body, content_type="application/json")
    assert r.status_code == 422
    assert r.json == {"error": "invalid application",
                      "fields": {"_": "an application must be a JSON object"}}
    r = client.post("/api/v1/predict/batch", data=body, content_type="application/json")
    assert r.status_code == 422
    assert r.json == {"error": 'body must be {"applications": [ ... ]} with at least one'}


def test_wrong_content_type_is_415(client, application):
    r = client.post("/api/v1/predict", data="age=30", content_type="text/plain")
    assert r.status_code == 415


def test_unknown_route_and_method_are_json_4xx(client):
    assert client.get("/api/v1/nothing").status_code == 404
    assert client.get("/api/v1/predict").status_code == 405


def test_batch(client, application):
    apps = [application, {**application, "credit_utilization_ratio": 95, "delinquent_months": 20,
                          "total_dpd": 600}]
    r = client.post("/api/v1/predict/batch", json={"applications": apps})
    assert r.status_code == 200
    results = r.json["results"]
    assert len(results) == 2
    assert results[1]["probability_of_default"] > results[0]["probability_of_default"]
    assert int(results[1]["grade"]) > int(results[0]["grade"])  # riskier, a worse grade


@pytest.mark.parametrize("reasons", ["true", "false"])
def test_a_batch_is_logged_as_answered(client, application, trained, reasons):
    """Each application of a batch (with its id or without) recorded with the request's id,
    the inputs as sent and the result as answered, in order."""
    from credit_risk.records.backends import decision_log_at

    apps = [{**application, "age": 20 + k} for k in range(30)]
    apps[4]["application_id"] = "L-4"
    r = client.post(f"/api/v1/predict/batch?reasons={reasons}", json={"applications": apps},
                    headers={"X-Request-ID": f"batch-logged-{reasons}"})
    assert r.status_code == 200
    logged = [d for d in decision_log_at(trained[0].decisions.url).read()
              if d["request_id"] == f"batch-logged-{reasons}"]
    assert [d["inputs"] for d in logged] == apps
    assert [{k: v for k, v in d.items() if k not in ("at", "request_id", "inputs")}
            for d in logged] == r.json["results"]
    assert len({d["at"] for d in logged}) == 1


def test_batch_errors_are_indexed(client, application):
    r = client.post("/api/v1/predict/batch",
                    json={"applications": [application, {**application, "age": -1}]})
    assert r.status_code == 422
    assert list(r.json["fields"]) == ["1"] and "age" in r.json["fields"]["1"]


def test_batch_limit(trained, application):
    from serving import create_app

    app = create_app(trained[0].model_copy(update={"max_batch_rows": 2}), watch=False)
    r = app.test_client().post("/api/v1/predict/batch", json={"applications": [application] * 3})
    assert r.status_code == 413


def test_model_summary(client, trained):
    body = client.get("/api/v1/model").json
    assert body["model_version"] == trained[1]
    assert body["dataset"] == "lauki_synthetic"
    assert {f["name"] for f in body["inputs"]} >= {"credit_utilization_ratio", "income"}
    assert "gender" not in {f["name"] for f in body["inputs"]}


@pytest.mark.parametrize("change,field,why", [
    ({"delinquent_months": 40, "total_loan_months": 0}, "delinquent_months",
     "cannot exceed the total months of credit history"),
    ({"total_dpd": 5000, "delinquent_months": 0}, "total_dpd",
     "must be 0 when there are no delinquent months"),
])
def test_contradictory_applications_are_refused_not_scored(client, application, change, field,
                                                           why):
    r = client.post("/api/v1/predict", json={**application, **change})
    assert r.status_code == 422 and r.json["fields"] == {field: why}
    batch = client.post("/api/v1/predict/batch",
                        json={"applications": [application, {**application, **change}]})
    assert batch.status_code == 422 and batch.json["fields"] == {"1": {field: why}}


# -- conformance (issue 8, item 10) -------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "TRACE"])
def test_405_names_the_allowed_methods(client, method):
    r = client.open("/api/v1/predict", method=method)
    assert r.status_code == 405 and "error" in r.json
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"POST"}
    r = client.open("/api/v1/model", method="POST" if method == "GET" else method)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


def test_batch_refuses_top_level_keys_the_schema_forbids(client, application):
    r = client.post("/api/v1/predict/batch",
                    json={"applications": [application], "priority": "high", "x": 1})
    assert r.status_code == 422
    assert r.json["fields"] == {"priority": "unknown field", "x": "unknown field"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_name_the_field(client, application, literal):
    body = json.dumps({**application, "income": "SENTINEL"}).replace('"SENTINEL"', literal)
    r = client.post("/api/v1/predict", data=body, content_type="application/json")
    assert r.status_code == 422 and r.json["fields"] == {"income": "must be a finite number"}
    batch = '{"applications": [' + json.dumps(application) + ", " + body + "]}"
    r = client.post("/api/v1/predict/batch", data=batch, content_type="application/json")
    assert r.status_code == 422
    assert r.json["fields"] == {"1": {"income": "must be a finite number"}}


def test_logging_is_the_entry_points_not_the_app_factorys(tmp_path):
    """create_app leaves the process's logging alone (tests, an embedding app); the WSGI
    entry point gunicorn loads sets the app's messages at INFO on stderr."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "CREDIT_RISK_REGISTRY_URL": str(tmp_path / "registry"),
           "CREDIT_RISK_DECISION_LOG": str(tmp_path / "d.jsonl"),
           "CREDIT_RISK_RELOAD_INTERVAL_S": "0"}
    probe = ("import logging, sys\n"
             "root = logging.getLogger()\n"
             "from serving import create_app\n"
             "create_app(watch=False)\n"
             "print(root.handlers == [], root.level == logging.WARNING)\n"
             "import serving.wsgi\n"
             "print(len(root.handlers), root.level == logging.INFO)\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True", "1", "True"]


class Trickle(io.RawIOBase):
    """A server's input that hands the body over at most 100 bytes per read."""

    def __init__(self, data: bytes):
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(100, len(buffer), len(self.data))
        buffer[:n], self.data = self.data[:n], self.data[n:]
        return n


def test_a_body_handed_over_in_pieces_is_read_whole(client, application):
    body = json.dumps({"applications": [application] * 3}).encode()
    r = client.post("/api/v1/predict/batch", data=body, content_type="application/json",
                    environ_overrides={"wsgi.input": Trickle(body),
                                       "wsgi.input_terminated": True})
    assert r.status_code == 200 and len(r.json["results"]) == 3


def test_a_body_shorter_than_its_length_is_refused(client, application):
    """A client that announces more than it sends (the server does not end the input)."""
    body = json.dumps(application).encode()
    r = client.post("/api/v1/predict", data=body, content_type="application/json",
                    environ_overrides={"wsgi.input": Trickle(body),
                                       "CONTENT_LENGTH": str(len(body) + 100)})
    assert r.status_code == 400
