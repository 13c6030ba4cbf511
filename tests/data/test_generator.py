import pandas as pd
import pytest

from credit_risk.pipeline import synthetic


def test_seeded_and_reproducible():
    a, b = synthetic.generate(500, seed=3), synthetic.generate(500, seed=3)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_schema_and_quirks_at_default_size():
    t = synthetic.generate(50_000)
    c, loans, bureau = t["customers"], t["loans"], t["bureau"]
    assert len(c) == len(loans) == len(bureau) == 50_000
    assert c["cust_id"].is_unique and loans["loan_id"].is_unique
    assert c["age"].between(18, 70).all()
    assert 0 < (c["income"] == 0).sum() < 50
    assert 0.0003 < c["residence_type"].isna().mean() < 0.003
    assert 0 < (loans["loan_purpose"] == "Personaal").sum() < 50
    assert (loans["loan_amount"] <= loans["sanction_amount"]).all()
    fee_share = loans["processing_fee"] / loans["loan_amount"]
    assert 0 < (fee_share > 0.1).sum() < 50
    assert bureau["credit_utilization_ratio"].between(0, 99).all()
    assert (bureau["delinquent_months"] <= bureau["total_loan_months"]).all()
    assert 0.075 < loans["default"].mean() < 0.1


def test_shifted_batch_moves_utilisation_and_purpose_mix():
    ref, shifted = synthetic.generate(20_000), synthetic.generate(20_000, seed=5, shift=True)
    assert (shifted["bureau"]["credit_utilization_ratio"].mean()
            > ref["bureau"]["credit_utilization_ratio"].mean() + 5)
    share = lambda t: (t["loans"]["loan_purpose"] == "Education").mean()  # noqa: E731
    assert share(shifted) > share(ref) + 0.05


def _settings(tmp_path):
    from credit_risk.config import Settings

    return Settings(data_dir=tmp_path / "data", runs_dir=tmp_path / "runs",
                    registry_url=str(tmp_path / "reg"), decision_log=None, n_customers=500,
                    models=("logistic_regression",), search_iterations=1)


@pytest.mark.parametrize("missing", ["customers", "loans", "bureau"])
def test_a_missing_source_file_is_an_error_naming_it(tmp_path, missing):
    from credit_risk.pipeline import steps as pipeline
    from credit_risk.pipeline.ingest import IngestError
    from credit_risk.registry.store import Registry

    settings = _settings(tmp_path)
    folder = settings.data_dir / "lauki_synthetic"
    synthetic.write(synthetic.generate(500, seed=3), folder)
    (folder / f"{missing}.csv").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    with pytest.raises(IngestError, match=rf"source table not found: .*{missing}\.csv"):
        pipeline.ingest_step(settings, "run-1")
    with pytest.raises(IngestError, match="credit-risk generate-data"):
        pipeline.run_all(settings, "run-2")
    # Nothing regenerated, nothing snapshotted, nothing published.
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not list(settings.runs_dir.glob("*/raw/snapshot.json"))
    assert Registry(settings.registry_url).versions() == []


def test_every_missing_source_of_any_spec_is_named(tmp_path):
    from credit_risk.pipeline.ingest import IngestError, ingest
    from credit_risk.spec.dataset import load_spec

    spec = load_spec("lauki_synthetic")
    with pytest.raises(IngestError) as info:
        ingest(spec, tmp_path / "empty", tmp_path / "out")
    for name in ("customers.csv", "loans.csv", "bureau.csv"):
        assert name in str(info.value)
    german = load_spec("german_credit")
    name, table = next(iter(german.tables.items()))
    german = german.model_copy(update={"tables": {  # read from DATA_DIR, without a generator
        name: table.model_copy(update={"source": "applications.csv"})}})
    with pytest.raises(IngestError, match=r"german_credit/applications\.csv") as info:
        ingest(german, tmp_path / "empty", tmp_path / "out2")
    assert "generate-data" not in str(info.value)
