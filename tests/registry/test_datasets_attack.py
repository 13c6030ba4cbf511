"""Aliases per dataset, attacked: registries of earlier releases whose aliases cannot be told
apart, the gate, serving's choice of dataset and the models page's rollback form."""

import json
from types import SimpleNamespace

import pytest

from credit_risk.config import Settings
from credit_risk.pipeline import steps
from credit_risk.registry.store import AliasStateError, Registry


def _publish(registry, dataset, payload=b"model"):
    return registry.publish({"model.bin": payload, "card.md": b"# card"}, {"dataset": dataset})


def _old_registry(path, champion, previous=None):
    """state.json and history as the release before datasets wrote them (format 2, flat)."""
    aliases = {name: {"version": v, "set_at": "2025-01-01T00:00:00+00:00", "by": "old",
                      "reason": "before datasets", "replaced": None}
               for name, v in (("champion", champion), ("previous", previous)) if v}
    record = {"format": 2, "change": "c" * 32, "seq": 1, "parent": None,
              "action": "promote", "at": "2025-01-01T00:00:00+00:00", "by": "old",
              "changes": [{"alias": n, "version": a["version"], "replaced": None,
                           "reason": "before datasets"} for n, a in aliases.items()],
              "aliases": aliases}
    (path / "history").mkdir(exist_ok=True)
    (path / "aliases").mkdir(exist_ok=True)
    (path / "history" / "0000000001-20250101T000000000000Z-cccccccc-promote.json").write_text(
        json.dumps(record))
    (path / "aliases" / "state.json").write_text(json.dumps(record))


def _corrupt_manifest(path, version):
    (path / "models" / version / "manifest.json").write_text("{not json")


def test_the_gate_never_takes_unattributable_old_aliases_for_no_champion(tmp_path, monkeypatch):
    """An earlier release's registry whose champion's manifest cannot be read: which dataset
    its aliases are of cannot be told. The gate must not conclude that lauki has no champion
    (and promote a candidate without comparing it): the champion is not comparable, as it was
    before datasets."""
    monkeypatch.delenv("CREDIT_RISK_DATASET", raising=False)
    reg = tmp_path / "reg"
    registry = Registry(str(reg))
    a1 = _publish(registry, "lauki")
    _old_registry(reg, a1)
    _corrupt_manifest(reg, a1)
    settings = Settings(registry_url=str(reg))
    champion = steps._champion_on(settings, SimpleNamespace(name="lauki"), {}, None, None)
    assert champion is not None and champion["comparable"] is False


def test_a_storage_error_never_gives_old_aliases_to_another_dataset(tmp_path):
    """A promote of a second dataset while the manifests of an old registry's aliases cannot be
    read for a moment (a storage error): the promote fails and can be retried; lauki's
    aliases are never written as another dataset's (or as nobody's)."""
    reg = tmp_path / "reg"
    registry = Registry(str(reg))
    a1, a2 = _publish(registry, "lauki", b"1"), _publish(registry, "lauki", b"2")
    b1 = _publish(registry, "sba")
    _old_registry(reg, a2, a1)
    writer = Registry(str(reg))
    real = writer.manifest

    def flaky(version):
        if version in (a1, a2):
            raise OSError("connection reset")
        return real(version)

    writer.manifest = flaky
    with pytest.raises(AliasStateError):
        writer.promote(b1, "second portfolio")
    writer.manifest = real
    writer.promote(b1, "second portfolio, retried")
    reader = Registry(str(reg))
    assert (reader.alias_version("champion", "lauki"),
            reader.alias_version("previous", "lauki")) == (a2, a1)
    assert reader.alias_version("champion", "sba") == b1
    assert set(json.loads((reg / "aliases" / "state.json").read_text())["datasets"]) == {
        "lauki", "sba"}


def test_old_aliases_whose_manifests_are_unreadable_are_never_kept_as_nobodys(tmp_path):
    """Both manifests gone for good (corrupt): a promote continues the registry as before
    datasets (the old champion becomes the promoted dataset's previous), never as a dataset
    named "" that the gate, serving and the pages would take for another portfolio."""
    reg = tmp_path / "reg"
    registry = Registry(str(reg))
    a1, a2 = _publish(registry, "lauki", b"1"), _publish(registry, "lauki", b"2")
    a3 = _publish(registry, "lauki", b"3")
    _old_registry(reg, a2, a1)
    _corrupt_manifest(reg, a1)
    _corrupt_manifest(reg, a2)
    registry = Registry(str(reg))
    registry.promote(a3, "a replacement for the broken champion")
    state = json.loads((reg / "aliases" / "state.json").read_text())
    assert set(state["datasets"]) == {"lauki"}
    assert registry.alias_version("champion", "lauki") == a3
    assert registry.alias_version("previous", "lauki") == a2


# -- the models page ---------------------------------------------------------------------------
def test_a_rollback_button_never_rolls_back_another_dataset(tmp_path):
    """A section of the models page for models whose manifest names no dataset (""): its
    rollback form must not roll back CREDIT_RISK_DATASET's portfolio instead (an empty form
    field reaches the page's handler as no dataset at all)."""
    import re

    from fastapi.testclient import TestClient

    from credit_risk_ui import create_ui

    reg = tmp_path / "reg"
    registry = Registry(str(reg))
    meta = {"model": "lr", "metrics": {"roc_auc": 0.9, "ece": 0.01}, "status": "approved"}
    a1, a2 = (registry.publish({"m.bin": p}, {**meta, "dataset": "lauki"}) for p in (b"1", b"2"))
    n1, n2 = (registry.publish({"m.bin": p}, meta) for p in (b"3", b"4"))  # no dataset named
    for version in (a1, a2, n1, n2):
        registry.promote(version, "r")
    settings = Settings(registry_url=str(reg), runs_dir=tmp_path / "runs", dataset="lauki")
    client = TestClient(create_ui(settings, lambda: "ml-engineer", lambda user: True),
                        headers={"origin": "http://testserver"})
    page = client.get("/").text
    assert f"champion {n2}, previous {n1}" in page  # listed, in a section of its own
    none = page.split("Dataset (none)</h3>")[1].split("<h3")[0]
    for value in re.findall(r"name='dataset' value='([^']*)'", none):
        client.post("/rollback", data={"reason": "the unnamed models", "dataset": value})
    assert (registry.alias_version("champion", "lauki"),
            registry.alias_version("previous", "lauki")) == (a2, a1)
    assert "models rollback --dataset ''" in none  # the way to roll them back
    assert registry.rollback("named as the page says", dataset="") == n1
    assert registry.alias_version("champion", "lauki") == a2


# -- serving -------------------------------------------------------------------------------------
def test_serving_falls_back_in_an_old_registry_whose_champion_manifest_is_corrupt(trained_copy):
    """An earlier release's registry (one dataset, flat aliases) whose champion's manifest is
    corrupt, served with CREDIT_RISK_DATASET set: its aliases cannot be told apart, which must
    not read as "no champion" (nothing served): serving falls back to the newest verified
    version of the history, as before datasets."""
    import shutil
    from pathlib import Path

    from serving import create_app
    from tests.registry.test_serving_datasets import republish_as

    settings, lauki = trained_copy
    reg = Path(settings.registry.url)
    registry = Registry(str(reg))
    broken = republish_as(registry, lauki, "lauki_synthetic")
    shutil.rmtree(reg / "history")
    (reg / "history").mkdir()
    aliases = {}
    parent = None
    for seq, version in ((1, lauki), (2, broken)):
        aliases = {"champion": {"version": version, "set_at": f"2025-01-0{seq}T00:00:00+00:00",
                                "by": "old", "reason": "before datasets", "replaced": None}}
        record = {"format": 2, "change": str(seq) * 32, "seq": seq, "parent": parent,
                  "action": "set", "at": f"2025-01-0{seq}T00:00:00+00:00", "by": "old",
                  "changes": [{"alias": "champion", "version": version, "replaced": None,
                               "reason": "before datasets"}], "aliases": aliases}
        (reg / "history" / f"{seq:010d}-2025010{seq}T000000000000Z-x-set.json").write_text(
            json.dumps(record))
        parent = record["change"]
    (reg / "aliases" / "state.json").write_text(json.dumps(record))
    _corrupt_manifest(reg, broken)
    client = create_app(settings.model_copy(update={"dataset": "lauki_synthetic"}),
                        watch=False).test_client()
    body = client.get("/ready").json
    assert body["model_version"] == lauki and body["fallback"] is True


def test_a_model_page_survives_a_manifest_whose_dataset_is_no_name(tmp_path):
    """An edited manifest (no keys: whoever writes the registry) whose dataset is a list: its
    page still renders (it was a 500), and it is never promotable."""
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
    assert page.status_code == 200 and "<b>x</b>" not in page.text
    assert client.get("/").status_code == 200
    assert client.post(f"/models/{version}/promote", data={"reason": "r"}).status_code == 404
    assert registry.aliases() == {}
