import json
import threading
import time

import pytest

from credit_risk.registry import ChecksumError, Registry, RegistryError


@pytest.fixture
def registry(tmp_path):
    return Registry(str(tmp_path / "reg"))


def _publish(registry, payload=b"model"):
    return registry.publish({"model.joblib": payload, "card.md": b"# card"}, {"dataset": "d"})


def test_publish_records_checksums_and_is_listed(registry):
    version = _publish(registry)
    manifest = registry.verify(version)
    assert registry.versions() == [version]
    assert set(manifest["files"]) == {"model.joblib", "card.md"}
    assert manifest["version"] == version and manifest["dataset"] == "d"


def test_half_written_version_is_invisible(registry, tmp_path):
    (tmp_path / "reg" / "models" / ".staging-x").mkdir(parents=True)
    (tmp_path / "reg" / "models" / "20990101T000000Z-deadbeef").mkdir()  # no manifest
    assert registry.versions() == []


def test_checksum_mismatch_is_detected(registry, tmp_path):
    version = _publish(registry)
    (tmp_path / "reg" / "models" / version / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="model.joblib"):
        registry.verify(version)


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


def test_alias_is_replaced_atomically(registry, tmp_path):
    versions = [_publish(registry, str(i).encode()) for i in range(3)]
    seen, stop = [], threading.Event()
    path = tmp_path / "reg" / "aliases" / "state.json"
    registry.promote(versions[0], "start")

    def reader():
        while not stop.is_set():
            seen.append(json.loads(path.read_text())["aliases"]["champion"]["version"])

    t = threading.Thread(target=reader)
    t.start()
    for i in range(60):
        registry.set_alias("champion", versions[i % 3], "churn")
    stop.set()
    t.join()
    assert seen and set(seen) <= set(versions)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_concurrent_promotes_and_rollbacks_keep_the_aliases_consistent(registry, monkeypatch):
    versions = [_publish(registry, str(i).encode()) for i in range(3)]
    registry.promote(versions[0], "start")
    registry.promote(versions[1], "start")
    slow = registry._change

    def change_slowly(*args, **kwargs):  # widen the window between read and write
        time.sleep(0.002)
        return slow(*args, **kwargs)

    monkeypatch.setattr(registry, "_change", change_slowly)
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
    with pytest.raises(RegistryError, match="registry s3://bucket/reg"):
        Registry("s3://bucket/reg")
