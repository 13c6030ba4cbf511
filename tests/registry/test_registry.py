import json
import threading
import time

import pytest

from credit_risk.registry import ChecksumError, Registry, RegistryError


@pytest.fixture
def registry(store):
    return Registry(store.url)


def _publish(registry, payload=b"model"):
    return registry.publish({"model.joblib": payload, "card.md": b"# card"}, {"dataset": "d"})


def test_publish_records_checksums_and_is_listed(registry):
    version = _publish(registry)
    manifest = registry.verify(version)
    assert registry.versions() == [version]
    assert set(manifest["files"]) == {"model.joblib", "card.md"}
    assert manifest["version"] == version and manifest["dataset"] == "d"


def test_half_written_version_is_invisible(registry, store):
    store.write("models/.staging-x/model.joblib", b"half")
    store.write("models/20990101T000000Z-deadbeef/model.joblib", b"m")  # no manifest
    assert registry.versions() == []


def test_checksum_mismatch_is_detected(registry, store):
    version = _publish(registry)
    store.write(f"models/{version}/model.joblib", b"tampered")
    with pytest.raises(ChecksumError, match="model.joblib"):
        registry.verify(version)


@pytest.mark.parametrize("stray", [".DS_Store", "._model.joblib", "model.joblib~", "notes.txt"])
def test_a_file_the_manifest_does_not_list_is_a_warning_never_a_failure(registry, store,
                                                                         caplog, stray):
    version = _publish(registry)
    store.write(f"models/{version}/{stray}", b"left by a file manager or an editor")
    assert registry.verify(version)["version"] == version  # the listed files are whole
    assert f"files not in the manifest, ignored: {stray}" in caplog.text
    registry.promote(version, "a stray file is no reason to refuse")
    assert registry.alias_version("champion") == version
    with pytest.raises(RegistryError, match="has no file"):
        registry.read_file(version, stray)  # and never served


def test_models_verify_warns_of_a_stray_file_and_succeeds(registry, store, monkeypatch,
                                                          capsys):
    from credit_risk.cli import main

    version = _publish(registry)
    store.write(f"models/{version}/.DS_Store", b"finder")
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", store.url)
    assert main(["models", "verify", version]) == 0
    out, err = capsys.readouterr()
    assert f"OK {version}: 2 files match" in out
    assert "WARNING" in err and ".DS_Store" in err


def test_promote_and_rollback_are_recorded(registry):
    v1 = _publish(registry, b"one")
    v2 = _publish(registry, b"two")
    registry.promote(v1, "first", by="alice")
    registry.promote(v2, "better", by="bob")
    assert registry.alias_version("champion") == v2
    assert registry.alias_version("previous") == v1
    assert registry.rollback("v2 misbehaves", by="carol") == v1
    assert registry.alias_version("champion") == v1
    history = registry.history()
    assert [h["alias"] for h in history][-2:] == ["previous", "champion"]
    assert history[-1]["by"] == "carol" and "misbehaves" in history[-1]["reason"]


def test_rollback_without_previous_fails_clearly(registry):
    registry.promote(_publish(registry), "only one")
    with pytest.raises(RegistryError, match="no previous"):
        registry.rollback("why not")


def test_alias_to_unknown_version_is_refused(registry):
    with pytest.raises(RegistryError, match="no model version"):
        registry.promote("nope", "typo")


def test_alias_is_replaced_atomically(registry, store):
    versions = [_publish(registry, str(i).encode()) for i in range(3)]
    seen, stop = [], threading.Event()
    registry.promote(versions[0], "start")

    def reader():
        while not stop.is_set():
            state = json.loads(store.read("aliases/state.json"))
            seen.append(state["datasets"]["d"]["champion"]["version"])

    t = threading.Thread(target=reader)
    t.start()
    for i in range(60 if not store.s3 else 20):
        registry.set_alias("champion", versions[i % 3], "churn")
    stop.set()
    t.join()
    assert seen and set(seen) <= set(versions)
    assert not [n for n in store.names("aliases") if n.startswith(".tmp-")]


def test_concurrent_promotes_and_rollbacks_keep_the_aliases_consistent(registry, monkeypatch):
    versions = [_publish(registry, str(i).encode()) for i in range(3)]
    registry.promote(versions[0], "start")
    registry.promote(versions[1], "start")
    slow = registry.chain.change

    def change_slowly(*args, **kwargs):  # widen the window between read and write
        time.sleep(0.002)
        return slow(*args, **kwargs)

    monkeypatch.setattr(registry.chain, "change", change_slowly)
    errors = []

    def churn(k):
        try:
            for i in range(15):
                if i % 3 == 0:
                    registry.rollback("churn")
                else:
                    registry.promote(versions[(i + k) % 3], "churn")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # Every champion change replaced the champion of the change before it: no lost update.
    changes = [h for h in registry.history() if h["alias"] == "champion"]
    for before, after in zip(changes, changes[1:], strict=False):
        assert after["replaced"] == before["version"], (before, after)
    assert registry.alias_version("champion") == changes[-1]["version"]


def test_object_store_without_its_library_is_a_clear_error():
    with pytest.raises(RegistryError, match="registry gcs://bucket/reg"):
        Registry("gcs://bucket/reg").versions()  # gcsfs is not installed (s3fs is)


@pytest.mark.parametrize("layout", ["aliases/champion.json", "aliases/state.json",
                                    "history/0000000001.json"])
def test_aliases_of_an_earlier_release_ask_for_a_re_promote(store, layout):
    registry = Registry(store.url)
    v1 = _publish(registry)
    old = {"format": 2, "change": "c" * 32, "seq": 1, "parent": None,
           "aliases": {"champion": {"version": v1}}}
    store.write(layout, json.dumps(old if layout != "aliases/champion.json"
                                   else {"alias": "champion", "version": v1}))
    with pytest.raises(RegistryError, match="re-promote the champion with this release"):
        registry.alias_version("champion")
    registry.promote(v1, "re-promoted with this release")
    assert Registry(store.url).alias_version("champion") == v1


def test_a_manifest_of_an_earlier_release_asks_for_a_re_publish(store):
    registry = Registry(store.url)
    version = _publish(registry)
    manifest = json.loads(store.read(f"models/{version}/manifest.json"))
    del manifest["sizes"]
    store.write(f"models/{version}/manifest.json", json.dumps(manifest))
    with pytest.raises(RegistryError, match="no file sizes .*re-publish the model"):
        registry.verify(version)
    assert registry.versions() == []


def test_a_change_interrupted_after_its_history_record_is_in_force(store):
    registry = Registry(store.url)
    v1, v2 = _publish(registry, b"1"), _publish(registry, b"2")
    registry.promote(v1, "one")
    before = store.read("aliases/state.json")
    registry.promote(v2, "two")
    store.write("aliases/state.json", before)  # as if killed between history and state.json
    reader = Registry(store.url)  # the chain decides, never the lagging copy
    assert (reader.alias_version("champion"), reader.alias_version("previous")) == (v2, v1)
    assert reader.rollback("back") == v1


def test_only_stale_leftovers_are_cleaned(tmp_path):
    import os

    registry = Registry(str(tmp_path / "reg"))
    registry.promote(_publish(registry), "x")
    old = time.time() - 2 * 3600
    paths = {"old_staging": tmp_path / "reg" / "models" / ".staging-old",
             "new_staging": tmp_path / "reg" / "models" / ".staging-new",
             "old_tmp": tmp_path / "reg" / "aliases" / ".tmp-old",
             "new_tmp": tmp_path / "reg" / "history" / ".tmp-new",
             "old_hist_tmp": tmp_path / "reg" / "history" / ".tmp-old"}
    for name, path in paths.items():
        if "staging" in name:
            path.mkdir()
            (path / "model.joblib").write_bytes(b"half")
        else:
            path.write_bytes(b"{")
        if name.startswith("old"):
            os.utime(path, (old, old))
    newer = registry.publish({"model.joblib": b"2"}, {"dataset": "d"})  # cleans models/
    registry.promote(newer, "cleans aliases/ and history/")
    assert {n for n, p in paths.items() if p.exists()} == {"new_staging", "new_tmp"}
