"""The validation report's page of a version in the Airflow UI plugin."""

import json

from fastapi.testclient import TestClient

from credit_risk.pipeline.validation_report.model import REPORT_FILE
from credit_risk.registry import Registry
from credit_risk_ui import create_ui
from tests.conftest import republish
from tests.ui.test_page_escaping import SCRIPT, _assert_inert


def logged_in() -> str:
    return "ml-engineer"


def test_the_page_shows_the_report_and_is_linked(trained):
    settings, version = trained
    client = TestClient(create_ui(settings, logged_in))
    assert f"{version}/validation" in client.get(f"/models/{version}").text
    page = client.get(f"/models/{version}/validation")
    assert page.status_code == 200
    for part in ("Discrimination", "Calibration per grade", "Stability of the grades",
                 "Feature importance", "marital_status", "loan_purpose", "files/"
                 "validation_report.png", "class='light green'"):
        assert part in page.text
    assert client.get(f"/models/{version}/files/validation_report.png").status_code == 200
    assert client.get(f"/models/{version}/files/{REPORT_FILE}").status_code == 200
    assert client.get("/models/nope/validation").status_code == 404


def test_versions_without_or_with_a_bad_report(trained_copy):
    settings, version = trained_copy
    registry = Registry.from_settings(settings)
    client = TestClient(create_ui(settings, logged_in))
    # a version published before the report existed: no link, a 404
    manifest = registry.manifest(version)
    files = {n: registry.read_file(version, n) for n in manifest["files"] if n != REPORT_FILE}
    meta = {k: v for k, v in manifest.items()
            if k not in ("version", "created_at", "files", "sizes", "signature")}
    older = registry.publish(files, meta)
    assert "/validation" not in client.get(f"/models/{older}").text
    assert client.get(f"/models/{older}/validation").status_code == 404

    def hostile(name, data):
        if name != REPORT_FILE:
            return data
        report = json.loads(data)
        report["segments"][0]["groups"][0]["group"] = SCRIPT
        report["model"] = SCRIPT
        return json.dumps(report).encode()

    page = client.get(f"/models/{republish(registry, version, hostile)}/validation").text
    _assert_inert(page)
    assert "&lt;script&gt;" in page

    def broken(name, data):
        return b'{"model": 1}' if name == REPORT_FILE else data

    page = client.get(f"/models/{republish(registry, version, broken)}/validation")
    assert page.status_code == 200 and "Unreadable validation report" in page.text
    assert "not a valid validation report" in page.text
