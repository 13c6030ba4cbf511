"""The Airflow UI plugin's pages: models, model card, promote/rollback by the logged-in user."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from credit_risk.pipeline.run_reports import Comparison
from credit_risk.registry import Registry
from credit_risk_ui import create_ui, is_report
from tests.conftest import republish

ROOT = Path(__file__).parents[2]


class User:
    def get_name(self):
        return "ml-engineer"


def logged_in() -> User:
    return User()


def logged_out(request: Request) -> None:
    raise HTTPException(401, "not authenticated")


@pytest.fixture
def env(trained_copy):
    """The fixture's registry and runs, copied: the pages promote, roll back and tamper."""
    return trained_copy


def test_pages_need_an_airflow_login(env):
    client = TestClient(create_ui(env[0], logged_out))
    assert client.get("/").status_code == 401
    assert client.get(f"/models/{env[1]}/files/model_card.html").status_code == 401


def test_models_page_card_and_run_outputs(env):
    settings, version = env
    client = TestClient(create_ui(settings, logged_in))
    page = client.get("/").text
    assert version in page and "champion" in page and "approved" in page
    card = client.get(f"/models/{version}/files/model_card.html")
    assert card.status_code == 200 and "Model card" in card.text
    assert client.get(f"/models/{version}/files/reliability.png").content[:4] == b"\x89PNG"
    runs = client.get("/runs").text
    assert "fixture-run" in runs and "comparison.json" in runs
    comparison = client.get("/runs/fixture-run/comparison.json")
    assert comparison.status_code == 200
    assert Comparison.loads(comparison.content, "the served comparison.json").selected
    assert "comparison.json" in client.get("/runs/fixture-run").text
    assert client.get("/runs/nope").status_code == 404
    assert client.get("/runs/fixture-run/..%2F..%2Fetc%2Fpasswd").status_code == 404
    # Reports only: never the raw data, the split or the fitted candidates.
    for private in ("raw/loans.parquet", "split/train.parquet", "candidates/xgboost.joblib"):
        assert (settings.data.runs_dir / "fixture-run" / private).exists()
        assert client.get(f"/runs/fixture-run/{private}").status_code == 404
    card = client.get(f"/models/{version}/files/model_card.html")
    assert card.headers["content-security-policy"].startswith("sandbox")


def test_drift_reports_are_listed_and_served(env, monkeypatch):
    from credit_risk.pipeline.monitoring import drift_step
    from tests.model.test_monitoring import _log_traffic

    settings, _ = env
    settings = settings.model_copy(update={"decision_log": settings.data.runs_dir / "d.jsonl"})
    _log_traffic(settings, shift=True)
    drift_step(settings, "daily-1")
    client = TestClient(create_ui(settings, logged_in))
    page = client.get("/monitoring").text
    assert "daily-1" in page and "credit_utilization_ratio" in page
    assert client.get("/runs/monitoring/daily-1/drift_report.html").status_code == 200
    assert client.get("/runs/monitoring/daily-1/drift.json").json()["drift"] is True


def test_tampered_file_is_not_served(env, tmp_path):
    settings, version = env
    card = Path(settings.registry.url) / "models" / version / "model_card.html"
    card.write_text("<p>forged</p>")
    client = TestClient(create_ui(settings, logged_in))
    assert client.get(f"/models/{version}/files/model_card.html").status_code == 404


def test_promote_and_rollback_record_the_user(env):
    settings, version = env
    registry = Registry(settings.registry.url)
    other = republish(registry, version)
    viewer = TestClient(create_ui(settings, logged_in))
    refused = viewer.post(f"/models/{other}/promote", data={"reason": "x"})
    assert refused.status_code == 403 and registry.alias_version("champion") == version
    client = TestClient(create_ui(settings, logged_in, may_change=lambda user: True),
                        headers=OWN)
    r = client.post(f"/models/{other}/promote", data={"reason": "looks better"},
                    follow_redirects=False)
    assert r.status_code == 303 and registry.alias_version("champion") == other
    assert registry.history()[-1]["by"] == "ml-engineer"
    assert client.post("/rollback", data={"reason": "oops"}).status_code == 200
    assert registry.alias_version("champion") == version
    assert registry.history()[-1]["reason"] == "rollback: oops"
    forged = client.post("/rollback", data={"reason": "x"},
                         headers={"origin": "http://evil.example"})
    assert forged.status_code == 403
    assert client.post(f"/models/{other}/promote", data={"reason": ""}).status_code == 422


OWN = {"origin": "http://testserver"}  # the TestClient's own origin


def test_changes_need_the_pages_own_origin(env):
    """Scheme, host and port of Origin (or, without one, of Referer) must be the pages' own or
    a configured one; a request without either is refused unless it carries a Bearer token."""
    settings, version = env
    registry = Registry(settings.registry.url)
    other = republish(registry, version)
    registry.promote(other, "fixture", by="fixture")
    registry.promote(version, "fixture", by="fixture")  # a rollback has somewhere to go
    client = TestClient(create_ui(settings, logged_in, may_change=lambda user: True,
                                  origins=["https://airflow.example.com/"]))
    refused = [{"origin": "evil://testserver"}, {"origin": "https://testserver"},
               {"origin": "http://testserver:8080"}, {"origin": "http://evil.example"},
               {"origin": "null"}, {"origin": ""}, {}, {"referer": "http://evil.example/"},
               {"referer": "evil://testserver/credit-risk/"}, {"referer": "not a url"},
               {"origin": "http://evil.example", "referer": "http://testserver/"},
               {"origin": "http://evil.example", "authorization": "Bearer t"},
               {"authorization": "Basic dTpw"}, {"authorization": "Bearer "}]
    for headers in refused:
        r = client.post("/rollback", data={"reason": "x"}, headers=headers)
        assert r.status_code == 403, headers
    assert registry.alias_version("champion") == version
    accepted = [OWN, {"origin": "HTTP://TESTSERVER:80"}, {"referer": "http://testserver/x"},
                {"authorization": "Bearer t"}, {"origin": "https://airflow.example.com"},
                {"origin": "http://testserver", "authorization": "Bearer t"}]
    for headers in accepted:
        r = client.post("/rollback", data={"reason": "x"}, headers=headers,
                        follow_redirects=False)
        assert r.status_code == 303, headers
    assert registry.alias_version("champion") == version  # six rollbacks: back and forth


def test_airflow_loads_the_plugin_and_nothing_else_from_the_folder():
    """The plugin loads; the package beside it (credit_risk_ui, listed in .airflowignore) is
    imported by the plugin, never by Airflow file by file."""
    script = ("import json\n"
              "from airflow import plugins_manager as pm\n"
              "pm.ensure_plugins_loaded()\n"
              "names = [p['name'] for p in pm.get_plugin_info()]\n"
              "print(json.dumps({'names': names, 'errors': pm.get_import_errors()}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, env={**__import__("os").environ,
                                        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins")})
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "credit_risk" in loaded["names"], loaded["names"]
    assert loaded["errors"] == {}


@pytest.mark.parametrize(("run", "path", "served"), [
    ("fixture-run", "comparison.json", True),
    ("fixture-run", "reliability.png", True),
    ("fixture-run", "validation/validation.json", True),
    ("fixture-run", "validation/gx_results/lauki_synthetic.loans.json", True),
    ("fixture-run", "validation/data_docs/index.html", True),
    ("fixture-run", "validation/data_docs/static/fonts/HKGrotesk/HKGrotesk-Bold.otf", True),
    ("monitoring", "scheduled__2026-11-30T00:00:00+00:00/drift_report.html", True),
    ("monitoring", "daily-1/drift.json", True),
    ("monitoring", "daily-1/psi.png", True),
    ("monitoring", "daily-1/performance.json", True),
    ("monitoring", "daily-1/performance.png", True),
    ("monitoring", "daily-1/outcomes.jsonl", False),
    ("monitoring", "daily-1/performance.csv", False),
    ("fixture-run", "raw/customers.parquet", False),
    ("fixture-run", "split/train.parquet", False),
    ("fixture-run", "candidates/xgboost.joblib", False),
    ("fixture-run", "validation/../raw/customers.parquet", False),
    ("fixture-run", "validation/./validation.json", False),
    ("fixture-run", "validation//validation.json", False),
    ("fixture-run", "validation/data_docs/../../raw/customers.parquet", False),
    ("fixture-run", "validation/data_docs/x/../../../raw/loans.html", False),
    ("fixture-run", "validation/data_docs/customers.parquet", False),
    ("fixture-run", "validation/gx_results/sub/x.json", False),
    ("fixture-run", "validation/..\\raw\\customers.parquet", False),
    ("fixture-run", "validation/%2e%2e/raw/customers.parquet", False),
    ("fixture-run", "/etc/passwd", False),
    ("fixture-run", "validation/.hidden.json", False),
    ("fixture-run", "validation/validation.json\x00", False),
    ("..", "fixture-run/comparison.json", False),
    (".", "comparison.json", False),
    ("monitoring", "../drift.json", False),
    ("monitoring", "daily-1/recent.parquet", False),
    ("monitoring", "daily-1/sub/drift.json", False),
])
def test_only_report_files_are_served(run, path, served):
    assert is_report(run, path) is served


def test_private_files_and_symlinks_are_404(env, tmp_path):
    settings, version = env
    run = settings.data.runs_dir / "fixture-run"
    (run / "validation" / "copy.json").symlink_to(run / "raw" / "loans.parquet")
    (settings.data.runs_dir / "elsewhere").symlink_to(run, target_is_directory=True)
    client = TestClient(create_ui(settings, logged_in))
    for path in ("/runs/fixture-run/validation%2F..%2Fraw%2Floans.parquet",
                 "/runs/fixture-run/validation/%2e%2e/raw/loans.parquet",
                 "/runs/fixture-run/validation/copy.json",
                 "/runs/elsewhere/comparison.json", "/runs/elsewhere",
                 f"/models/{version}/files/model.joblib",
                 f"/models/{version}/files/reference.parquet",
                 "/models/%2e%2e/files/model_card.html"):
        assert client.get(path).status_code == 404, path
    assert client.get("/runs/fixture-run/validation/validation.json").status_code == 200
    assert "elsewhere" not in client.get("/runs").text


def test_a_refused_alias_record_is_shown_not_a_server_error(env):
    settings, version = env
    client = TestClient(create_ui(settings, logged_in))
    for record in (Path(settings.registry.url) / "history").iterdir():  # an earlier layout
        record.unlink()
    (Path(settings.registry.url) / "aliases" / "state.json").write_text("{")
    page = client.get("/")
    assert page.status_code == 200 and "Alias record refused" in page.text
    assert "re-promote the champion with this release" in page.text
    assert client.get(f"/models/{version}").status_code == 200


def test_models_page_groups_by_dataset_and_rolls_back_one(env):
    """Two portfolios in one registry: a section per dataset with its own aliases and its own
    rollback form; a rollback names its dataset and leaves the other alone."""
    from tests.registry.test_serving_datasets import republish_as

    settings, version = env
    registry = Registry(settings.registry.url)
    sba1, sba2 = republish_as(registry, version, "sba"), republish_as(registry, version, "sba")
    registry.promote(sba1, "first sba")
    registry.promote(sba2, "second sba")
    client = TestClient(create_ui(settings, logged_in, may_change=lambda user: True),
                        headers=OWN)
    page = client.get("/").text
    lauki, sba = page.split("Dataset sba</h3>")
    assert "Dataset lauki_synthetic</h3>" in lauki and version in lauki and sba1 not in lauki
    assert f"champion {sba2}, previous {sba1}" in sba and "Roll back sba to" in sba
    assert "name='dataset' value='sba'" in sba
    assert "Roll back lauki_synthetic" not in page  # it has no previous
    # sba2's page offers no promotion (it is sba's champion); lauki's model is not sba's.
    assert "Promote to champion" not in client.get(f"/models/{sba2}").text
    assert "Promote to champion of sba" in client.get(f"/models/{sba1}").text
    ambiguous = client.post("/rollback", data={"reason": "which?"})
    assert ambiguous.status_code == 409 and "several datasets" in ambiguous.text
    r = client.post("/rollback", data={"reason": "sba misbehaves", "dataset": "sba"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert registry.alias_version("champion", "sba") == sba1
    assert registry.alias_version("champion", "lauki_synthetic") == version
    assert client.post("/rollback", data={"reason": "x", "dataset": "../sba"}).status_code == 409
    assert client.post("/rollback", data={"reason": "x", "dataset": "german"}).status_code == 409
    assert registry.alias_version("champion", "sba") == sba1
    # Promoting from the page acts on the version's own dataset.
    r = client.post(f"/models/{sba2}/promote", data={"reason": "fixed"}, follow_redirects=False)
    assert r.status_code == 303 and registry.alias_version("champion", "sba") == sba2
    assert registry.alias_version("champion", "lauki_synthetic") == version
