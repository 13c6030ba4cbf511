"""Fuzzing the API from its own OpenAPI document (schemathesis): valid and invalid requests,
at least 1,000 cases, not one 5xx, and every response as documented (status code, content
type, schema); valid applications accepted, invalid ones rejected."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from serving import create_app
from tests.serving.servers import in_thread

# Too many rows in a batch is refused with 413 (Content Too Large), a rejection like 422.
# Schema-valid applications may still break a cross-field rule of the spec (which OpenAPI
# cannot express, e.g. delinquent months <= months of history): those get 422, by design.
CONFIG = SchemathesisConfig.from_dict({"checks": {
    "negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429",
        "5xx"]},
    "positive_data_acceptance": {"expected-statuses": ["2xx", "422"]},
}})

CASES = {  # (path, method, mode) -> examples; 1,250 generated cases in all
    ("/api/v1/predict", "POST", GenerationMode.POSITIVE): 400,
    ("/api/v1/predict", "POST", GenerationMode.NEGATIVE): 400,
    ("/api/v1/predict/batch", "POST", GenerationMode.POSITIVE): 200,
    ("/api/v1/predict/batch", "POST", GenerationMode.NEGATIVE): 200,
    ("/api/v1/model", "GET", GenerationMode.POSITIVE): 20,
    ("/ready", "GET", GenerationMode.POSITIVE): 10,
    ("/health", "GET", GenerationMode.POSITIVE): 10,
    ("/metrics", "GET", GenerationMode.POSITIVE): 10,
}


@pytest.fixture(scope="module")
def schema(trained, tmp_path_factory):
    settings_ = trained[0].model_copy(update={
        "max_batch_rows": 5, "decision_log": tmp_path_factory.mktemp("fuzz") / "d.jsonl"})
    app = create_app(settings_, watch=False)
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG)


def test_no_server_errors_on_generated_requests(schema):
    seen: list[int] = []
    for (path, method, mode), examples in CASES.items():
        operation = schema[path][method]

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            response = case.call_and_validate()  # all of schemathesis's checks, 5xx included
            seen.append(response.status_code)
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])

        run()
    print(f"{len(seen)} generated requests; statuses {sorted(Counter(seen).items())}")
    assert len(seen) >= 1_000, len(seen)
    assert 200 in seen and 422 in seen  # both valid and invalid applications got through


CLI_CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                     "429"]
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "422"]  # the documented cross-field rules: 422, by design
"""


def test_every_schemathesis_check_passes_over_http(trained, tmp_path):
    """`schemathesis run --checks all` (examples, coverage and fuzzing phases: undeclared
    methods, Allow headers, forbidden keys, edge numbers...) against a live server: any failure,
    not only a 5xx, fails the test."""
    settings_ = trained[0].model_copy(update={"max_batch_rows": 5,
                                              "decision_log": tmp_path / "d.jsonl"})
    (tmp_path / "schemathesis.toml").write_text(CLI_CONFIG)
    with in_thread(create_app(settings_, watch=False)) as base:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "--config-file",
             str(tmp_path / "schemathesis.toml"), "run", f"{base}/openapi.json",
             "--checks", "all", "--phases", "examples,coverage,fuzzing", "--max-examples", "40",
             "--seed", "8", "--workers", "1", "--suppress-health-check", "all", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=480)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Coverage" in result.stdout and "failed" not in result.stdout.split("SUMMARY")[-1]


# -- hand-written hostile text: every field, one application and a row of a batch ------------
ODD_TEXT = {  # text -> a part of the reason given for it in a text field
    "lone-high-surrogate": ("\ud800", "valid UTF-8 text (U+D800"),
    "lone-low-surrogate": ("ok\udfff", "valid UTF-8 text (U+DFFF"),
    "half-a-pair": ("a\ud83d", "valid UTF-8 text (U+D83D"),
    "nul": ("\x00", "control characters"),
    "nul-inside": ("Salaried\x00", "control characters"),
    "c1-control": ("a\x85b", "control characters"),
    "right-to-left-override": ("\u202eSalaried", "bidirectional control marks (U+202E)"),
    "right-to-left-mark": ("Salaried\u200f", "bidirectional control marks (U+200F)"),
    "isolate": ("\u2066x\u2069", "bidirectional control marks (U+2066)"),
    "over-long": ("S" * 100_000, "at most"),
}


def _post(client, path, payload: str):
    return client.post(path, data=payload, content_type="application/json")


def _answers(client, application, name, value):
    """The single and batch answers (the bad application as row 1 of 2) with `value` in
    field `name`, the body written by the standard library (lone surrogates as \\uXXXX)."""
    one = json.dumps({**application, name: value})
    batch = '{"applications": [' + json.dumps(application) + ", " + one + "]}"
    return _post(client, "/api/v1/predict", one), _post(client, "/api/v1/predict/batch", batch)


@pytest.fixture(scope="module")
def hostile(trained, tmp_path_factory):
    log = tmp_path_factory.mktemp("hostile") / "d.jsonl"
    client = create_app(trained[0].model_copy(update={"decision_log": log}),
                        watch=False).test_client()
    fields = client.get("/api/v1/model").json["inputs"]
    return client, {f["name"]: f["default"] for f in fields}, fields, log


@pytest.mark.parametrize("case", ODD_TEXT)
def test_odd_text_in_any_field_is_a_422_naming_it(hostile, case):
    client, application, fields, _ = hostile
    text, why = ODD_TEXT[case]
    for field in [*fields, {"name": "application_id", "type": "id"}]:
        name = field["name"]
        single, batch = _answers(client, application, name, text)
        assert single.status_code == 422, (name, single.get_data()[:300])
        assert batch.status_code == 422, (name, batch.get_data()[:300])
        assert list(single.json["fields"]) == [name]
        assert list(batch.json["fields"]) == ["1"] and list(batch.json["fields"]["1"]) == [name]
        said = single.json["fields"][name]
        assert batch.json["fields"]["1"][name] == said
        if field["type"] in ("category", "id"):
            assert why in said, (name, said)
        else:
            assert said == "must be a number"


@pytest.mark.parametrize("case", ODD_TEXT)
def test_odd_text_in_a_field_name_is_a_422_that_echoes_it_escaped(hostile, case):
    client, application, _, _ = hostile
    text = ODD_TEXT[case][0]
    single = _post(client, "/api/v1/predict", json.dumps({**application, text: 1}))
    batch = _post(client, "/api/v1/predict/batch", json.dumps(
        {"applications": [application, {**application, text: 1}]}))
    top = _post(client, "/api/v1/predict/batch", json.dumps(
        {"applications": [application], text: 1}))
    for response, fields in ((single, lambda b: b["fields"]),
                             (batch, lambda b: b["fields"]["1"]), (top, lambda b: b["fields"])):
        assert response.status_code == 422, response.get_data()[:300]
        [(name, why)] = fields(response.json).items()
        assert why == "unknown field"
        assert len(name) <= 101 + 5 * 3 and name.isprintable()  # cut, odd characters escaped


def test_a_lone_surrogate_in_a_field_name_is_written_as_an_escape(hostile):
    client, application, _, _ = hostile
    r = _post(client, "/api/v1/predict", json.dumps({**application, "a\ud800\u202eb": 1}))
    assert r.status_code == 422 and r.json["fields"] == {"a\\ud800\\u202eb": "unknown field"}


def test_an_application_id_in_another_normal_form_is_refused_not_recorded(hostile):
    """Text is not rewritten on the way to the decision log: an id must be NFC (one spelling
    per id to join outcomes with); categories match in NFC (tests/unit/test_fields.py)."""
    client, application, _, log = hostile
    single, batch = _answers(client, application, "application_id", "Cafe\u0301-1")
    assert single.status_code == batch.status_code == 422
    assert "normal form NFC" in single.json["fields"]["application_id"]
    assert "Cafe\u0301" not in (log.read_text() if log.exists() else "")
    ok = _post(client, "/api/v1/predict", json.dumps({**application, "application_id": "Café-1"}))
    assert ok.status_code == 200


@pytest.mark.parametrize("raw", [b'{"age": "\\ud800"', b'{"\\ud800": 1, "\\udc00": 2}',
                                 b'{"applications": [{"\\ud800": "\\udfff"}]}'])
def test_raw_bodies_with_surrogates_are_never_a_5xx(hostile, raw):
    client = hostile[0]
    for path in ("/api/v1/predict", "/api/v1/predict/batch"):
        r = client.post(path, data=raw, content_type="application/json")
        assert 400 <= r.status_code < 500 and r.is_json, (path, r.get_data()[:300])
