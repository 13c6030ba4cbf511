"""The registry as the pipeline, serving and `predict` use it, on the model of `trained`."""

import json
import shutil
from pathlib import Path

import pytest

from credit_risk.pipeline import steps as pipeline
from credit_risk.pipeline.run_reports import IncomparableChampion
from credit_risk.registry import (
    Registry,
    RegistryError,
    SignatureError,
    signing,
)
from tests.registry.attack import malicious_pickle, replace_files


def _signed_copy(trained, tmp_path):
    """The trained version re-published, signed, into a registry that trusts the key."""
    settings, version = trained
    source = Registry(settings.registry.url)
    manifest = source.verify(version)
    files = {n: source.read_file(version, n, manifest) for n in manifest["files"]}
    private, public, _ = signing.generate(tmp_path / "keys")
    signed = settings.model_copy(update={
        "registry_url": str(tmp_path / "reg"), "runs_dir": tmp_path / "runs",
        "decision_log": tmp_path / "d.jsonl", "signing_key_file": private,
        "trusted_keys": (public,)})
    registry = Registry.from_settings(signed)
    body = {k: v for k, v in manifest.items() if k not in ("version", "created_at", "files")}
    new = registry.publish(files, body)
    return signed, registry, new


def _tamper(tmp_path, version, marker):
    """The attack of issue 8: a __reduce__ pickle and an edited plan, hashes rewritten."""
    folder = tmp_path / "reg" / "models" / version
    manifest = json.loads((folder / "manifest.json").read_text())
    replaced = {"model.joblib": malicious_pickle(marker)}
    for name in manifest["files"]:
        if name.endswith(".json") and name != "comparison.json":
            replaced[name] = (folder / name).read_bytes() + b" "
    replace_files(folder, replaced)


def test_signed_model_serves_and_a_tampered_one_is_refused_everywhere(trained, tmp_path):
    settings, registry, good = _signed_copy(trained, tmp_path)
    registry.promote(good, "signed copy")
    assert pipeline.load_scorer(settings).version == good  # `credit-risk predict`'s path

    bad = registry.publish(*_files_and_body(registry, good))
    marker = tmp_path / "pwned"
    _tamper(tmp_path, bad, marker)
    with pytest.raises(SignatureError):
        registry.promote(bad, "attack")
    with pytest.raises(SignatureError):
        pipeline.load_scorer(settings, bad)
    with pytest.raises(SignatureError):
        pipeline.load_model(registry, bad)

    # The attacker also edits the alias state by hand (write access to the registry): the
    # state is only a copy of the signed chain's last record, so the edit moves nothing.
    state = tmp_path / "reg" / "aliases" / "state.json"
    record = json.loads(state.read_text())
    record["datasets"][record["dataset"]]["champion"]["version"] = bad
    state.write_text(json.dumps(record))
    assert registry.alias_version("champion") == good
    assert pipeline.load_scorer(settings).version == good
    from credit_risk.registry.champion import ModelStore

    store = ModelStore(registry)
    assert store.refresh()
    summary = store.summary()
    assert summary["model_version"] == good and summary["fallback"] is False, summary
    assert not marker.exists()


def _files_and_body(registry, version):
    manifest = registry.verify(version)
    files = {n: registry.read_file(version, n, manifest) for n in manifest["files"]}
    body = {k: v for k, v in manifest.items()
            if k not in ("version", "created_at", "files", "signature")}
    return files, body


def test_the_champion_comparison_refuses_a_tampered_champion(trained, tmp_path):
    settings, registry, good = _signed_copy(trained, tmp_path)
    registry.promote(good, "signed copy")
    split_dir = next(trained[0].data.runs_dir.glob("fixture-run/split"))
    spec, info = pipeline.split_spec(str(split_dir))
    X, y = pipeline.load_part(str(split_dir), "test")
    ok = pipeline.champion_on_test_set(settings, spec, info, X, y)
    assert ok is not None and ok.comparable is True and ok.version == good

    marker = tmp_path / "pwned"
    _tamper(tmp_path, good, marker)
    refused = pipeline.champion_on_test_set(settings, spec, info, X, y)
    assert isinstance(refused, IncomparableChampion) and "signature" in refused.note
    assert not marker.exists()


def test_a_retried_publish_leaves_an_operators_rollback_alone(trained, tmp_path):
    settings, version = trained
    shutil.copytree(settings.registry.url, tmp_path / "reg")
    s = settings.model_copy(update={"registry_url": str(tmp_path / "reg")})
    registry = Registry(s.registry.url)
    other = registry.publish({"model.joblib": b"older"}, {"dataset": "lauki_synthetic"})
    registry.promote(other, "an earlier champion")
    registry.promote(version, "approved by the training gate")  # what the first attempt did
    assert registry.rollback("operator: the new model misbehaves", by="ops") == other
    changes = len(registry.history())

    comparison = next(settings.data.runs_dir.glob("fixture-run/comparison.json"))
    assert pipeline.publish_step(s, str(comparison)) == version  # the retry
    assert registry.alias_version("champion") == other
    assert registry.alias_version("previous") == version
    assert len(registry.history()) == changes
    assert registry.versions() == sorted([version, other])


def test_a_missing_version_is_a_clear_error(tmp_path):
    with pytest.raises(RegistryError, match="no model version"):
        Registry(str(tmp_path / "reg")).verify("20990101T000000.000000Z-abcdef")


def _plant(registry_dir, name, text):
    (registry_dir / "models" / name).mkdir()
    (registry_dir / "models" / name / "manifest.json").write_text(text)


def test_planted_and_unparsable_manifests_do_not_fool_publish_or_listings(trained_copy,
                                                                          capsys, monkeypatch):
    settings, version = trained_copy
    registry_dir = Path(settings.registry.url)
    _plant(registry_dir, "zzzz-planted", json.dumps({"run": "fixture-run", "dataset": "x"}))
    _plant(registry_dir, "zzzz-unparsable", "{")
    _plant(registry_dir, "zzzz-renamed", json.dumps(
        {**Registry(settings.registry.url).manifest(version), "version": "elsewhere"}))
    registry = Registry(settings.registry.url)
    assert registry.versions() == [version]
    assert registry.find("run", "fixture-run") == version
    comparison = next(settings.data.runs_dir.glob("fixture-run/comparison.json"))
    assert pipeline.publish_step(settings, str(comparison)) == version  # the retry finds it
    for key, value in {"CREDIT_RISK_REGISTRY_URL": settings.registry.url,
                       "CREDIT_RISK_RUNS_DIR": str(settings.data.runs_dir)}.items():
        monkeypatch.setenv(key, value)
    from credit_risk.cli import main

    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    assert version in listing and "zzzz" not in listing


def test_a_signed_registry_lists_and_finds_only_signed_manifests(trained, tmp_path):
    settings, registry, good = _signed_copy(trained, tmp_path)
    unsigned = Registry(settings.registry.url).publish({"model.joblib": b"x"},
                                                       {"run": "plantedrun", "dataset": "d"})
    assert Registry(settings.registry.url).find("run", "plantedrun") == unsigned  # no keys
    assert registry.find("run", "plantedrun") is None
    assert registry.versions() == [good]


def test_data_changed_since_champion_with_a_bad_champion_manifest(trained_copy, caplog):
    settings, version = trained_copy
    snapshot = settings.data.runs_dir / "fixture-run" / "raw" / "snapshot.json"
    assert pipeline.data_changed_since_champion(settings, str(snapshot)) is False
    (Path(settings.registry.url) / "models" / version / "manifest.json").write_text("{")
    assert pipeline.data_changed_since_champion(settings, str(snapshot)) is True
    assert "treating the data as new" in caplog.text
