"""The models page shows the alias chain's changes, and history files left off it apart."""

import json

from fastapi.testclient import TestClient

from credit_risk_ui import create_ui


def logged_in() -> str:
    return "ml-engineer"


def _sections(page: str) -> tuple[str, str]:
    """(the page up to the rejected list, the rejected list)."""
    head, _, rejected = page.partition("Rejected history records")
    return head, rejected


def test_forged_and_malformed_history_records_are_listed_apart(site):
    settings, registry, second = site
    folder = settings.registry.url + "/history"
    genuine = registry.history()
    assert genuine, "the fixture promotes twice"
    nxt = max(h["seq"] for h in genuine) + 1
    forged = {**json.loads(open(f"{folder}/{genuine[-1]['seq']:010d}.json").read()),
              "seq": nxt, "by": "mallory"}
    forged["changes"] = [{**forged["changes"][0], "reason": "forged by mallory"}]
    with open(f"{folder}/{nxt:010d}.json", "w") as fh:
        json.dump(forged, fh)
    with open(f"{folder}/{nxt + 1:010d}.json", "w") as fh:
        fh.write("{}")
    page = TestClient(create_ui(settings, logged_in)).get("/").text
    head, rejected = _sections(page)
    assert "forged by mallory" not in head and "mallory" not in head
    assert f"{nxt:010d}.json" in rejected and f"{nxt + 1:010d}.json" in rejected
    assert [h["change"] for h in registry.history()] == [h["change"] for h in genuine]
