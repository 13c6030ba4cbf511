import json
import threading

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
    path = tmp_path / "reg" / "aliases" / "champion.json"
    registry.promote(versions[0], "start")

    def reader():
        while not stop.is_set():
            seen.append(json.loads(path.read_text())["version"])  # never partial JSON

    t = threading.Thread(target=reader)
    t.start()
    for i in range(60):
        registry.set_alias("champion", versions[i % 3], "churn")
    stop.set()
    t.join()
    assert seen and set(seen) <= set(versions)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]
