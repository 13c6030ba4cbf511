"""The single-row request path's shortcuts give what the general code gives: the rules on
floats, one application's features, the session shortcuts, the kept metric children and
`ensure_sync` answers."""

import random

import numpy as np
import pytest
from flask import Flask
from prometheus_client import REGISTRY

from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.pipeline.ingest import assemble
from credit_risk.scoring.features import FeaturePlan
from credit_risk.spec.fields import check_rules, rule_violations
from serving import ServingFlask, metrics
from serving.security import SessionInterface

RULES = [
    {"check": "a <= b", "field": "a", "message": "a above b"},
    {"check": "c == 0 or a > 0"},
    {"check": "a / b < 2"},  # b = 0: the division is 0
    {"check": "log1p(c) > -1"},  # c < -1: NaN, the rule is broken
    {"check": "max(a, c) - min(b, 1) >= -5", "field": "c"},
    {"check": "-a * 1e308 * 10 < 0 and abs(b) != 3"},  # overflow to infinity
]
VALUES = [None, 0, 1, 2, 3, -1, -2, 0.5, 2.5, 1e300, -1e300, 10**20, True, False]


def test_the_rules_of_one_application_agree_with_the_column_path():
    rng = random.Random(7)
    cases = [{"a": a, "b": b, "c": c} for a in VALUES for b in VALUES[:6] for c in VALUES[:8]]
    cases += [{"a": rng.uniform(-5, 5), "b": rng.choice(VALUES), "c": rng.uniform(-3, 3)}
              for _ in range(500)]
    broken = 0
    for values in cases:
        expected = rule_violations(RULES, [values])[0]
        assert check_rules(RULES, values) == expected, values
        broken += bool(expected)
    assert 0 < broken < len(cases)  # the cases break some rules and keep others
    assert check_rules([], {"a": 1}) == {}
    with pytest.raises(ValueError):  # text where a number belongs: as the column path
        check_rules(RULES, {"a": "x", "b": 1, "c": 1})


@pytest.fixture(scope="module")
def plan_and_records(tables, spec):
    frame = assemble(spec, tables)
    plan = FeaturePlan(FeatureTransformer(spec).fit(frame).plan_)
    records = frame.head(40).astype(object).where(frame.head(40).notna(), None).to_dict("records")
    edited = [
        {**records[0], "income": None, "total_loan_months": 0, "delinquent_months": 0},
        {**records[1], "employment_status": "Astronaut", "age": 10**6},
        {**records[2], "employment_status": None, "credit_utilization_ratio": -50},
        {k: v for k, v in records[3].items() if k not in ("age", "loan_amount")},
    ]
    return plan, records + edited


def test_one_applications_features_are_its_row_of_a_batch(plan_and_records):
    plan, records = plan_and_records
    rows, warnings = plan.prepare(records)  # the batch path
    warned = 0
    for i, record in enumerate(records):
        row, said = plan.prepare([record])
        assert np.array_equal(row[0], rows[i]), i  # bit for bit
        assert said[0] == warnings[i]
        warned += bool(said[0])
    assert warned >= 4


def test_an_api_call_opens_no_session_and_sets_no_cookie():
    app = Flask(__name__)
    app.secret_key = b"s" * 32
    app.session_interface = SessionInterface()

    @app.get("/api")
    def api():
        return "ok"

    @app.get("/login")
    def login():
        from flask import session

        session["who"] = "me"
        return "ok"

    client = app.test_client()
    r = client.get("/api")
    assert "Set-Cookie" not in r.headers and "Vary" not in r.headers
    r = client.get("/login")
    assert "session=" in r.headers["Set-Cookie"]
    assert client.get("/api").status_code == 200  # with the cookie: Flask's own path


def test_the_kept_session_serializer_follows_the_secret():
    app = Flask(__name__)
    app.secret_key = b"one" * 11
    sessions = SessionInterface()
    first = sessions.get_signing_serializer(app)
    assert sessions.get_signing_serializer(app) is first
    token = first.dumps({"a": 1})
    app.secret_key = b"two" * 11
    second = sessions.get_signing_serializer(app)
    assert second is not first
    with pytest.raises(Exception, match="[Ss]ignature"):
        second.loads(token)
    app.config["SECRET_KEY_FALLBACKS"] = [b"one" * 11]
    assert sessions.get_signing_serializer(app).loads(token) == {"a": 1}


def test_metric_children_are_kept_up_to_a_bound(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_CHILDREN", 3)
    monkeypatch.setattr(metrics, "_requests", {})
    labels = {"endpoint": "/test-kept", "status": "200"}
    for i in range(6):
        metrics.count_request("/test-kept", f"M{i}", "200", 0.001)
        metrics.count_request("/test-kept", f"M{i}", "200", 0.002)
    assert len(metrics._requests) == 3
    for i in range(6):  # kept or not, every request is counted
        assert REGISTRY.get_sample_value("credit_risk_http_requests_total",
                                         {**labels, "method": f"M{i}"}) == 2
        assert REGISTRY.get_sample_value("credit_risk_http_request_duration_seconds_sum",
                                         {**labels, "method": f"M{i}"}) == pytest.approx(0.003)


def test_a_method_nobody_serves_is_counted_as_other():
    """A client chooses the method: an unknown one must not become a series of its own."""
    app = Flask(__name__)
    metrics.install(app)
    client = app.test_client()
    labels = {"endpoint": "<unmatched>", "status": "404"}

    def count(method: str) -> float:
        return REGISTRY.get_sample_value("credit_risk_http_requests_total",
                                         {**labels, "method": method}) or 0

    before = count("other"), count("GET")
    for n in range(5):
        client.open("/nowhere", method=f"BREW{n}")
    client.get("/nowhere")
    assert (count("other"), count("GET")) == (before[0] + 5, before[1] + 1)
    assert count("BREW0") == 0


def test_predictions_are_counted_by_band_one_or_many(monkeypatch):
    def value(rating, risk):
        return REGISTRY.get_sample_value("credit_risk_predictions_total",
                                         {"rating": rating, "risk": risk}) or 0

    before = value("Good", "Low"), value("Poor", "High")
    metrics.count_predictions([{"rating": "Good", "risk": "Low"}])
    metrics.count_predictions([{"rating": "Good", "risk": "Low"}, {"rating": "Poor",
                                                                   "risk": "High"}] * 2)
    assert (value("Good", "Low"), value("Poor", "High")) == (before[0] + 3, before[1] + 2)


def test_ensure_sync_answers_are_kept():
    app = ServingFlask(__name__)

    def view():
        return "ok"

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self):
            return "ok"

    assert app.ensure_sync(view) is view and app.ensure_sync(view) is view
    assert view in app._sync_of
    odd = Unhashable()
    assert app.ensure_sync(odd) is odd


def test_a_backlog_that_cannot_be_read_does_not_fail_the_scrape():
    class Unreadable:
        def pending_bytes(self) -> int:
            raise PermissionError(13, "Permission denied")

    app = Flask(__name__)
    metrics.install(app)
    app.extensions["credit_risk"] = {"decisions": Unreadable()}
    r = app.test_client().get("/metrics")
    assert r.status_code == 200 and b"credit_risk_http_requests_total" in r.data
