"""The models page of a registry holding a malformed manifest."""

import json

from credit_risk.config import Settings
from credit_risk.registry import Registry


def test_a_malformed_manifest_is_a_404_on_its_page_never_a_500(tmp_path):
    """An edited manifest (no keys: whoever writes the registry) whose dataset is a list: a
    malformed manifest, so its page is a 404 that says why (never a 500), the models page
    still renders, and it is never promotable."""
    from fastapi.testclient import TestClient

    from credit_risk_ui import create_ui

    reg = tmp_path / "reg"
    registry = Registry(str(reg))
    meta = {"model": "lr", "metrics": {"roc_auc": 0.9, "ece": 0.01}, "status": "approved"}
    version = registry.publish({"m.bin": b"1"}, {**meta, "dataset": "lauki"})
    path = reg / "models" / version / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "dataset": ["<b>x</b>"]}))
    settings = Settings(registry_url=str(reg), runs_dir=tmp_path / "runs")
    client = TestClient(create_ui(settings, lambda: "ml-engineer", lambda user: True),
                        headers={"origin": "http://testserver"})
    page = client.get(f"/models/{version}")
    assert page.status_code == 404 and "<b>x</b>" not in page.text
    assert "manifest is malformed" in page.text
    assert client.get("/").status_code == 200
    assert client.post(f"/models/{version}/promote", data={"reason": "r"}).status_code == 404
    assert registry.aliases() == {}
