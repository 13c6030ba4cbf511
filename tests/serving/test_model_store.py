import shutil

from credit_risk.model_store import ModelStore
from credit_risk.registry import Registry
from serving import create_app


def _copy_registry(trained, tmp_path):
    settings, version = trained
    target = tmp_path / "registry"
    shutil.copytree(settings.registry_url, target)
    return settings.model_copy(update={"registry_url": str(target)}), version


def test_no_champion_means_not_ready_and_503(tmp_path, trained):
    settings = trained[0].model_copy(update={"registry_url": str(tmp_path / "empty")})
    client = create_app(settings, watch=False).test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503
    r = client.post("/api/v1/predict", json={"age": 30})
    assert r.status_code == 503 and r.json["error"] == "no model loaded yet"


def test_tampered_champion_is_refused_and_last_good_keeps_serving(tmp_path, trained):
    settings, version = _copy_registry(trained, tmp_path)
    registry = Registry(settings.registry_url)
    store = ModelStore(registry)
    assert store.refresh() and store.scorer.version == version
    # A new version whose model file is corrupted after publishing.
    manifest = registry.manifest(version)
    files = {n: registry.read_file(version, n) for n in manifest["files"]}
    meta = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    bad = registry.publish(files, meta)
    (tmp_path / "registry" / "models" / bad / "model.joblib").write_bytes(b"garbage")
    registry.promote(bad, "test")
    assert not store.refresh()
    assert store.scorer.version == version
    assert store.reload_failures == 1 and "SHA-256" in store.last_error


def test_new_champion_and_rollback_are_picked_up(tmp_path, trained):
    settings, version = _copy_registry(trained, tmp_path)
    registry = Registry(settings.registry_url)
    manifest = registry.manifest(version)
    files = {n: registry.read_file(version, n) for n in manifest["files"]}
    meta = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    newer = registry.publish(files, meta)
    app = create_app(settings, watch=False)
    store = app.extensions["credit_risk"]["store"]
    client = app.test_client()
    assert client.get("/ready").json["model_version"] == version
    registry.promote(newer, "new")
    store.refresh()
    assert client.get("/ready").json["model_version"] == newer
    registry.rollback("bad")
    store.refresh()
    assert client.get("/ready").json["model_version"] == version
