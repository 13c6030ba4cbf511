from pathlib import Path

from credit_risk.registry.store import Registry
from credit_risk.scoring.champion import ModelStore
from serving import create_app
from tests.conftest import republish
from tests.serving.servers import metric


def test_no_champion_means_not_ready_and_503(tmp_path, trained):
    settings = trained[0].model_copy(update={"registry_url": str(tmp_path / "empty")})
    client = create_app(settings, watch=False).test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 503
    r = client.post("/api/v1/predict", json={"age": 30})
    assert r.status_code == 503 and r.json["error"] == "no model loaded yet"


def test_tampered_champion_is_refused_and_last_good_keeps_serving(trained_copy):
    settings, version = trained_copy
    registry = Registry(settings.registry.url)
    store = ModelStore(registry)
    assert store.refresh() and store.scorer.version == version
    # A new version whose model file is corrupted after publishing.
    bad = republish(registry, version)
    registry.promote(bad, "test")  # promote verifies: the file goes bad after it
    (Path(settings.registry.url) / "models" / bad / "model.joblib").write_bytes(b"garbage")
    assert not store.refresh()
    assert store.scorer.version == version
    assert store.reload_failures == 1 and "SHA-256" in store.last_error


def test_new_champion_and_rollback_are_picked_up(trained_copy):
    settings, version = trained_copy
    registry = Registry(settings.registry.url)
    newer = republish(registry, version)
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


def test_artifact_with_good_checksums_that_cannot_score_is_refused(trained_copy):
    settings, version = trained_copy
    registry = Registry(settings.registry.url)
    app = create_app(settings, watch=False)
    store = app.extensions["credit_risk"]["store"]
    client = app.test_client()

    before = metric(client, "credit_risk_model_reload_failures_total")
    def no_plan(name, data):  # checksummed by publish, but no usable scoring plan
        return b'{"not": "a plan"}' if name.endswith(".json") else data

    bad = republish(registry, version, edit=no_plan)
    registry.promote(bad, "broken")
    assert not store.refresh()
    assert store.scorer.version == version and "refused version" in store.last_error
    assert metric(client, "credit_risk_model_reload_failures_total") == before + 1
    assert not store.refresh() and store.reload_failures == 1  # not retried before the backoff
    ready = client.get("/ready").json
    assert ready["model_version"] == version and ready["reload_failures"] == 1
    assert client.get("/api/v1/model").json["last_error"].startswith("refused version")


def test_background_watcher_swaps_without_failing_requests(trained_copy):
    import threading
    import time

    settings, version = trained_copy
    registry = Registry(settings.registry.url)
    newer = republish(registry, version)
    app = create_app(settings.model_copy(update={"reload_interval_s": 0.05}), watch=True)
    store = app.extensions["credit_risk"]["store"]
    application = {f["name"]: f["default"] for f in store.scorer.fields}
    seen, statuses, stop = set(), [], threading.Event()

    def hammer():
        client = app.test_client()
        while not stop.is_set():
            r = client.post("/api/v1/predict", json=application)
            statuses.append(r.status_code)
            seen.add(r.json.get("model_version"))

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for target in (newer, version, newer):
            registry.promote(target, "swap") if target == newer else registry.rollback("back")
            deadline = time.time() + 10
            while store.scorer.version != target and time.time() < deadline:
                time.sleep(0.02)
            assert store.scorer.version == target
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
        store.stop()
    assert statuses and set(statuses) == {200}
    assert seen == {version, newer}


def test_a_running_store_keeps_its_model_when_the_alias_record_is_replayed(trained, tmp_path):
    """With trusted keys the alias record is signed: an older signed state put back (a
    replay) or an edited one is refused, and the last good model keeps serving."""
    import json

    from credit_risk.registry.store import signing

    settings, version = trained
    source = Registry(settings.registry.url)
    manifest = source.verify(version)
    files = {n: source.read_file(version, n, manifest) for n in manifest["files"]}
    body = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files",
                                                           "sizes")}
    private, public, _ = signing.generate(tmp_path / "keys")
    url = str(tmp_path / "reg")
    signer = Registry(url, signing_key=signing.load_private_key(private),
                      trusted_keys=[signing.load_public_key(public)])
    first, second = signer.publish(files, body), signer.publish(files, body)
    signer.promote(first, "one")
    state = Path(url) / "aliases" / "state.json"
    older = state.read_bytes()
    signer.promote(second, "two")
    store = ModelStore(Registry(url, trusted_keys=[signing.load_public_key(public)]))
    assert store.refresh() and store.scorer.version == second
    state.write_bytes(older)  # champion `first`, validly signed, but an older decision
    assert not store.refresh()
    assert store.scorer.version == second and "replayed older state" in store.last_error
    edited = json.loads(older)
    edited["seq"] = 99
    state.write_text(json.dumps(edited))
    assert not store.refresh()
    assert store.scorer.version == second and "signature does not match" in store.last_error
    assert not store.summary()["fallback"]
