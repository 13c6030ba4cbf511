"""Signed manifests: the attack of issue 8 (a pickle with a __reduce__ payload plus its hash
written into manifest.json) is refused by verify, promote, rollback and loading, once trusted
keys are configured; untrusted and missing signatures are refused; keys can be rotated."""

import io
import json
import logging
import shutil
import stat

import joblib
import pytest

from credit_risk.config import Settings
from credit_risk.pipeline.steps import load_model
from credit_risk.registry.store import (
    ChecksumError,
    Registry,
    SignatureError,
    signing,
)
from tests.registry.attack import malicious_pickle, replace_files


@pytest.fixture
def keys(tmp_path):
    a = signing.generate(tmp_path / "key-a")
    b = signing.generate(tmp_path / "key-b")
    return {"a": a, "b": b}


def _settings(tmp_path, sign_with=None, trust=(), **extra):
    return Settings(registry_url=str(tmp_path / "reg"), data_dir=tmp_path / "data",
                    runs_dir=tmp_path / "runs", decision_log=None,
                    signing_key_file=sign_with[0] if sign_with else None,
                    trusted_keys=tuple(k[1] for k in trust), **extra)


def _publish(registry, payload=b"model"):
    buf = io.BytesIO()
    joblib.dump({"weights": payload}, buf)
    return registry.publish({"model.joblib": buf.getvalue(), "card.md": b"# card"},
                            {"dataset": "d"})


def _tamper(tmp_path, version, marker, reg="reg"):
    """Replace the model with a malicious pickle and rewrite its hash in the manifest."""
    replace_files(tmp_path / reg / "models" / version, {"model.joblib": malicious_pickle(marker)})


def test_signed_version_verifies_and_names_its_key(tmp_path, keys):
    registry = Registry.from_settings(_settings(tmp_path, keys["a"], [keys["a"]]))
    version = _publish(registry)
    manifest = registry.verify(version)
    assert manifest["signature"]["key_id"] == keys["a"][2]
    assert manifest["signature"]["algorithm"] == "Ed25519"
    assert registry.check_signature(version, manifest) == keys["a"][2]
    registry.promote(version, "signed")
    assert registry.alias_version("champion") == version


def test_the_reduce_payload_with_a_rewritten_hash_is_refused(tmp_path, keys):
    settings = _settings(tmp_path, keys["a"], [keys["a"]])
    registry = Registry.from_settings(settings)
    good, bad = _publish(registry, b"good"), _publish(registry, b"bad")
    registry.promote(good, "start")
    marker = tmp_path / "pwned"
    _tamper(tmp_path, bad, marker)
    # Without trusted keys the rewritten hash passes: checksums only catch corruption.
    assert Registry(settings.registry.url).verify(bad)["version"] == bad
    for attempt in (lambda: registry.verify(bad), lambda: load_model(registry, bad),
                    lambda: registry.promote(bad, "attack"),
                    lambda: registry.read_file(bad, "model.joblib")):
        with pytest.raises(SignatureError, match="signature does not match"):
            attempt()
    assert not marker.exists()
    assert registry.alias_version("champion") == good
    assert registry.history()[-1]["version"] == good


def test_rollback_to_a_tampered_previous_is_refused(tmp_path, keys):
    registry = Registry.from_settings(_settings(tmp_path, keys["a"], [keys["a"]]))
    v1, v2 = _publish(registry, b"1"), _publish(registry, b"2")
    registry.promote(v1, "one")
    registry.promote(v2, "two")
    _tamper(tmp_path, v1, tmp_path / "pwned")
    with pytest.raises(SignatureError):
        registry.rollback("bad night")
    assert registry.alias_version("champion") == v2
    assert not (tmp_path / "pwned").exists()


def test_unsigned_and_untrusted_versions_are_refused(tmp_path, keys):
    unsigned = _publish(Registry(str(tmp_path / "reg")))
    by_b = _publish(Registry.from_settings(_settings(tmp_path, keys["b"])))
    registry = Registry.from_settings(_settings(tmp_path, keys["a"], [keys["a"]]))
    with pytest.raises(SignatureError, match="not signed"):
        registry.promote(unsigned, "legacy")
    with pytest.raises(SignatureError, match=f"signed by key '{keys['b'][2]}'.*not a trusted"):
        registry.verify(by_b)
    with pytest.raises(SignatureError):
        registry.promote(by_b, "other key")
    assert registry.alias_version("champion") is None


def test_a_forged_signature_value_is_refused(tmp_path, keys):
    registry = Registry.from_settings(_settings(tmp_path, keys["a"], [keys["a"]]))
    version = _publish(registry)
    path = tmp_path / "reg" / "models" / version / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["threshold"] = 0.99  # any field: the signature covers the whole manifest
    path.write_text(json.dumps(manifest))
    with pytest.raises(SignatureError, match="does not match"):
        registry.verify(version)


def test_a_signed_version_copied_under_another_id_is_refused(tmp_path, keys):
    registry = Registry.from_settings(_settings(tmp_path, keys["a"], [keys["a"]]))
    version = _publish(registry)
    shutil.copytree(tmp_path / "reg" / "models" / version,
                    tmp_path / "reg" / "models" / "29990101T000000.000000Z-aaaaaa")
    with pytest.raises(SignatureError, match="names version"):
        registry.verify("29990101T000000.000000Z-aaaaaa")


def test_a_file_not_in_the_manifest_is_refused(tmp_path, keys):
    registry = Registry.from_settings(_settings(tmp_path, keys["a"], [keys["a"]]))
    version = _publish(registry)
    (tmp_path / "reg" / "models" / version / "booster.ubj").write_bytes(b"extra")
    with pytest.raises(ChecksumError, match="not in the manifest: booster.ubj"):
        registry.verify(version)


def test_key_rotation_with_two_trusted_keys(tmp_path, keys):
    old = _publish(Registry.from_settings(_settings(tmp_path, keys["a"])))
    new = _publish(Registry.from_settings(_settings(tmp_path, keys["b"])))
    both = Registry.from_settings(_settings(tmp_path, keys["b"], [keys["a"], keys["b"]]))
    assert both.check_signature(old, both.verify(old)) == keys["a"][2]
    assert both.check_signature(new, both.verify(new)) == keys["b"][2]
    both.promote(old, "signed by the retiring key")
    both.promote(new, "signed by the new key")
    assert both.rollback("rotation drill") == old
    # After the rotation, the old key is dropped: its versions are no longer accepted.
    only_b = Registry.from_settings(_settings(tmp_path, keys["b"], [keys["b"]]))
    with pytest.raises(SignatureError, match="not a trusted key"):
        only_b.verify(old)


def test_trusted_keys_from_the_environment(tmp_path, keys, monkeypatch):
    monkeypatch.setenv("CREDIT_RISK_TRUSTED_KEYS", f"{keys['a'][1]}, {keys['b'][1]}")
    monkeypatch.setenv("CREDIT_RISK_SIGNING_KEY_FILE", str(keys["a"][0]))
    settings = Settings()
    assert settings.signing.trusted_keys == (keys["a"][1], keys["b"][1])
    assert settings.signing.key_file == keys["a"][0]


def test_publishing_needs_a_trusted_signing_key_when_keys_are_trusted(tmp_path, keys):
    with pytest.raises(SignatureError, match="no signing key"):
        _publish(Registry.from_settings(_settings(tmp_path, None, [keys["a"]])))
    with pytest.raises(SignatureError, match="not one of the trusted keys"):
        _publish(Registry.from_settings(_settings(tmp_path, keys["b"], [keys["a"]])))
    assert Registry(str(tmp_path / "reg")).versions() == []


def test_without_keys_it_works_as_before_and_says_so_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="credit_risk.registry.store")
    settings = _settings(tmp_path)
    registry = Registry.from_settings(settings)
    Registry.from_settings(settings)
    version = _publish(registry)
    registry.promote(version, "no keys")
    assert "signature" not in registry.verify(version)
    warnings = [r for r in caplog.records if "manifests are not signed/verified" in r.message]
    assert len(warnings) == 1


def test_generated_private_key_is_private(tmp_path):
    private, public, kid = signing.generate(tmp_path / "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert signing.key_id(signing.load_public_key(public)) == kid
    with pytest.raises(signing.SigningError, match="exists already"):
        signing.generate(tmp_path / "k")
    with pytest.raises(signing.SigningError, match="not an Ed25519 public key|cannot read"):
        signing.load_public_key(private)
