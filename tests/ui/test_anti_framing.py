"""Every HTML page of the plugin refuses to be framed by another site (clickjacking)."""

import pytest
from fastapi.testclient import TestClient

from credit_risk_ui import create_ui

FRAME = "frame-ancestors 'self'"


def logged_in() -> str:
    return "ml-engineer"


def _pages(version: str) -> list[str]:
    return ["/", f"/models/{version}", "/runs", "/runs/run-1", "/monitoring"]


def _stored_html(version: str) -> list[str]:
    return [f"/models/{version}/files/model_card.html",
            "/runs/run-1/validation/data_docs/index.html",
            "/runs/monitoring/daily-1/drift_report.html"]


def _directives(policy: str) -> list[str]:
    return [d.strip() for d in policy.split(";") if d.strip()]


@pytest.mark.parametrize("kind", ["page", "stored"])
def test_every_html_page_forbids_framing_by_other_sites(site, kind):
    settings, _, version = site
    client = TestClient(create_ui(settings, logged_in))
    paths = _pages(version) if kind == "page" else _stored_html(version)
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert answer.headers["x-frame-options"] == "SAMEORIGIN", path
        policies = answer.headers.get_list("content-security-policy")
        assert len(policies) == 1, (path, policies)
        directives = _directives(policies[0])
        assert [d for d in directives if d.startswith("frame-ancestors")] == [FRAME], path
        if kind == "stored":  # merged with the sandbox stored HTML runs in
            assert "sandbox allow-scripts" in directives, path


def test_other_responses_keep_their_headers(site):
    """JSON and images are not pages: their own headers only (the sandbox for reports)."""
    settings, _, _ = site
    client = TestClient(create_ui(settings, logged_in))
    report = client.get("/runs/monitoring/daily-1/drift.json")
    assert report.status_code == 200 and report.headers["content-security-policy"] == \
        "sandbox allow-scripts"
    assert "x-frame-options" not in report.headers
