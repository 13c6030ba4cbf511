"""Fuzzing the API from its own OpenAPI document (schemathesis): valid and invalid requests,
at least 1,000 cases, not one 5xx, and every response as documented (status code, content
type, schema); valid applications accepted, invalid ones rejected."""

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
