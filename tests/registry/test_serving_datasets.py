"""Serving and `credit-risk predict` in a registry of several datasets: each serves the champion
of the dataset its settings name, never a model of another dataset."""

import json
from pathlib import Path

import pytest

from credit_risk.pipeline import steps as pipeline
from credit_risk.registry.store import Registry, RegistryError
from credit_risk.scoring.champion import ModelStore, load_champion
from serving import create_app


def republish_as(registry, version, dataset):
    """A new version with the files of `version`, published as a model of `dataset`."""
    manifest = registry.manifest(version)
    files = {n: registry.read_file(version, n) for n in manifest["files"]}
    written = ("version", "created_at", "files", "sizes", "signature")
    meta = {k: v for k, v in manifest.items() if k not in written}
    return registry.publish(files, {**meta, "dataset": dataset})


@pytest.fixture
def portfolios(trained_copy):
    """The trained registry (lauki_synthetic's champion) plus an `sba` dataset with two
    versions promoted in turn."""
    settings, lauki = trained_copy
    registry = Registry(settings.registry.url)
    sba1, sba2 = republish_as(registry, lauki, "sba"), republish_as(registry, lauki, "sba")
    registry.promote(sba1, "first sba")
    registry.promote(sba2, "second sba")
    return settings, registry, lauki, sba1, sba2


def _ready(settings):
    client = create_app(settings, watch=False).test_client()
    response = client.get("/ready")
    return response.status_code, response.json, client


def test_serving_serves_the_dataset_of_its_settings(portfolios):
    settings, registry, lauki, sba1, sba2 = portfolios
    status, body, client = _ready(settings.model_copy(update={"dataset": "sba"}))
    assert status == 200 and body["dataset"] == "sba"
    assert body["model_version"] == sba2 and body["champion"] == sba2 and not body["fallback"]
    assert client.get("/api/v1/model").json["dataset"] == "sba"
    # Without a dataset setting: several datasets, so the configured spec's (lauki_synthetic).
    assert settings.registry.dataset is None and settings.data.spec == "lauki_synthetic"
    status, body, _ = _ready(settings)
    assert status == 200 and body["dataset"] == "lauki_synthetic"
    assert body["model_version"] == lauki


def test_a_registry_with_one_dataset_is_served_whatever_the_spec(portfolios, tmp_path):
    """Backward compatible: the only dataset is served even if the spec names another."""
    settings, registry, lauki, sba1, sba2 = portfolios
    only = Registry(str(tmp_path / "only"))
    version = only.publish({n: registry.read_file(sba2, n)
                            for n in registry.manifest(sba2)["files"]},
                           {k: v for k, v in registry.manifest(sba2).items()
                            if k not in ("version", "created_at", "files", "sizes")})
    only.promote(version, "the only one")
    status, body, _ = _ready(settings.model_copy(update={"registry_url": only.url}))
    assert status == 200 and body["dataset"] == "sba" and body["model_version"] == version


def test_rolling_back_one_dataset_does_not_move_the_other(portfolios):
    settings, registry, lauki, sba1, sba2 = portfolios
    lauki_store = ModelStore(Registry(settings.registry.url), dataset="lauki_synthetic")
    sba_store = ModelStore(Registry(settings.registry.url), dataset="sba")
    assert lauki_store.refresh() and sba_store.refresh()
    assert registry.rollback("sba misbehaves", dataset="sba") == sba1
    assert sba_store.refresh() and sba_store.scorer.version == sba1
    assert not lauki_store.refresh() and lauki_store.scorer.version == lauki


def test_an_alias_naming_a_model_of_another_dataset_is_refused(portfolios):
    """sba's champion edited to name lauki's model (no keys: whoever writes the registry can):
    serving sba refuses it and serves sba's newest verified version from the history;
    predict refuses it outright."""
    settings, registry, lauki, sba1, sba2 = portfolios
    path = Path(settings.registry.url) / "aliases" / "state.json"
    state = json.loads(path.read_text())
    state["datasets"]["sba"]["champion"]["version"] = lauki
    path.write_text(json.dumps(state))
    sba = settings.model_copy(update={"dataset": "sba"})
    status, body, _ = _ready(sba)
    assert status == 200 and body["dataset"] == "sba"
    assert body["champion"] == lauki and body["fallback"] is True
    assert body["model_version"] == sba2  # never lauki's model
    assert "model of dataset 'lauki_synthetic', not of 'sba'" in body["fallback_reason"]
    with pytest.raises(RegistryError, match="not of 'sba'"):
        pipeline.load_scorer(sba)
    with pytest.raises(RegistryError, match="not of 'sba'"):
        load_champion(Registry(settings.registry.url), lauki, dataset="sba")
    assert pipeline.load_scorer(settings, dataset="lauki_synthetic").version == lauki


def test_predict_scores_with_its_datasets_champion(portfolios, monkeypatch, tmp_path, capsys):
    from credit_risk.cli import main

    settings, registry, lauki, sba1, sba2 = portfolios
    fields = registry.manifest(lauki)["inputs"]
    row = {f["name"]: f.get("default") for f in fields}
    (tmp_path / "apps.csv").write_text(",".join(row) + "\n"
                                       + ",".join("" if v is None else str(v)
                                                  for v in row.values()) + "\n")
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", settings.registry.url)
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(tmp_path / "decisions.jsonl"))
    for dataset, expected in (("sba", sba2), ("lauki_synthetic", lauki)):
        assert main(["predict", str(tmp_path / "apps.csv"), "--dataset", dataset]) == 0
        assert expected in capsys.readouterr().out
    monkeypatch.setenv("CREDIT_RISK_DATASET", "sba")
    assert main(["predict", str(tmp_path / "apps.csv")]) == 0
    assert sba2 in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "apps.csv"), "--dataset", "german"]) == 1
    assert "no champion model of dataset 'german'" in capsys.readouterr().err


def test_new_data_is_judged_against_the_snapshots_own_champion(portfolios, tmp_path):
    """The training DAG's skip check compares a snapshot with the champion of the snapshot's
    dataset: sba's champion (with another fingerprint) does not make lauki's data new."""
    settings, registry, lauki, sba1, sba2 = portfolios
    snapshot = settings.data.runs_dir / "fixture-run" / "raw" / "snapshot.json"
    assert json.loads(snapshot.read_text())["dataset"] == "lauki_synthetic"
    sba3 = republish_as(registry, lauki, "sba")  # same files...
    manifest_path = Path(settings.registry.url) / "models" / sba3 / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["data_fingerprint"] = "another"  # ...trained on other data (no keys: an edit)
    manifest_path.write_text(json.dumps(manifest))
    registry.promote(sba3, "newest")  # the newest champion of the registry is sba's
    assert pipeline.data_changed_since_champion(settings, str(snapshot)) is False
    sba_snapshot = tmp_path / "snapshot.json"
    sba_snapshot.write_text(json.dumps({**json.loads(snapshot.read_text()), "dataset": "sba"}))
    assert pipeline.data_changed_since_champion(settings, str(sba_snapshot)) is True


def test_monitoring_reads_the_champion_of_its_dataset(portfolios, tmp_path):
    from credit_risk.pipeline.monitoring import drift_step

    settings, registry, lauki, sba1, sba2 = portfolios
    settings = settings.model_copy(update={"decision_log": tmp_path / "none.jsonl"})
    sba = json.loads(Path(drift_step(settings.model_copy(update={"dataset": "sba"}),
                                     "daily-sba")).read_text())
    assert (sba["champion"], sba["dataset"]) == (sba2, "sba")
    default = json.loads(Path(drift_step(settings, "daily-default")).read_text())
    assert (default["champion"], default["dataset"]) == (lauki, "lauki_synthetic")
