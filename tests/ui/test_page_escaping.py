"""Whatever the registry and the run folders hold is shown as text, never run as markup."""

import json
from html.parser import HTMLParser

from fastapi.testclient import TestClient

from credit_risk_ui import create_ui
from tests.ui.conftest import drift_report, figures, performance_report, small_site, write

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = "x' onmouseover='alert(1)"  # out of a single-quoted attribute
IMG = "<img src=x onerror=alert(1)>"  # a valid dataset name: printable, no slash


def logged_in() -> str:
    return "ml-engineer"


def _hostile_site(tmp_path):
    manifest = {"dataset": IMG, "model": SCRIPT, "status": BREAKOUT,
                "metrics": {"roc_auc": SCRIPT, "ece": BREAKOUT}}
    drift = drift_report(status=SCRIPT, drift=True, drifted_fields=[SCRIPT, BREAKOUT],
                         report="drift_report.html", psi=[{"field": SCRIPT, "psi": 0.5}])
    version = {"model_version": SCRIPT, **figures(),
               "training": {"roc_auc": 0.8, "ks": 0.4, "brier": 0.1, "default_rate": 0.1},
               "alerts": [],
               "vintages": [{"vintage": BREAKOUT, **figures(n=5, roc_auc=0.7, ks=0.3,
                                                            default_rate=0.2), "alerts": []}]}
    alert = {"model_version": SCRIPT, "vintage": IMG, "metric": SCRIPT, "value": 0.7,
             "training": 0.8, "limit": 0.05, "message": SCRIPT}
    performance = performance_report(status=SCRIPT, alert=True, decided_since=SCRIPT,
                                     versions=[version], alerts=[alert])
    return small_site(tmp_path, manifest, SCRIPT, BREAKOUT, drift, performance)


class Tags(HTMLParser):
    """The tags of a page and the names of their attributes, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def _assert_inert(page: str) -> None:
    """No tag or event handler of the hostile values survives."""
    parsed = Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert not [a for a in parsed.attributes if a.startswith("on")], parsed.attributes
    assert "<img src=x" not in page


def test_manifest_history_and_reports_are_escaped(tmp_path):
    settings, registry, version = _hostile_site(tmp_path)
    client = TestClient(create_ui(settings, logged_in))
    models = client.get("/")
    assert models.status_code == 200
    _assert_inert(models.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in models.text  # model name and reason
    assert "&lt;img src=x onerror=alert(1)&gt;" in models.text  # the dataset
    assert "x&#39; onmouseover=&#39;alert(1)" in models.text  # status, `by`
    page = client.get(f"/models/{registry.versions()[0]}")  # promotable: the form shows
    assert page.status_code == 200 and "Promote to champion of &lt;img" in page.text
    _assert_inert(page.text)
    monitoring = client.get("/monitoring")
    assert monitoring.status_code == 200 and "Performance on matured loans" in monitoring.text
    _assert_inert(monitoring.text)
    assert monitoring.text.count("&lt;script&gt;") >= 6  # status, fields, PSI, alerts, rows


def test_a_run_named_with_markup_is_never_listed_nor_echoed(tmp_path):
    settings, _, _ = _hostile_site(tmp_path)
    runs = settings.data.runs_dir
    write(runs / "<script>alert(1)" / "comparison.json", "{}")
    write(runs / "monitoring" / IMG / "drift.json", json.dumps(drift_report()))
    client = TestClient(create_ui(settings, logged_in))
    listing = client.get("/runs").text
    assert "run-1" in listing
    _assert_inert(listing)
    _assert_inert(client.get("/monitoring").text)
    for path in ("/runs/%3Cscript%3Ealert(1)", "/runs/%3Cscript%3Ealert(1)/comparison.json"):
        answer = client.get(path)
        assert answer.status_code == 404 and "text/html" not in answer.headers["content-type"]
