"""Fuzzing the API from its own OpenAPI document (schemathesis): valid and invalid requests,
at least 1,000 cases, not one 5xx, and every response as documented (status code, content
type, schema); valid applications accepted, invalid ones rejected."""

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from serving import create_app

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
