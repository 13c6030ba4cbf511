import numpy as np
import pandas as pd
import pytest

from credit_risk.datasets import synthetic


def test_seeded_and_reproducible():
    a, b = synthetic.generate(500, seed=3), synthetic.generate(500, seed=3)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


@pytest.mark.parametrize("shift, expected", [
    (False, ("99a36ed74200bb24", "ec7d29a8698c6af3", "424fa03f796ea563", "8d11d37a91034557")),
    (True, ("abdb8d2e6ad183c5", "f5478508a20a04c9", "1f8dc9b84d67320a", "c97b48832d92f75a")),
])
def test_the_default_seed_gives_the_tables_it_always_gave(shift, expected):
    """Pinned content fingerprints (of the generator before it was vectorised): a faster
    generator must not change the data of an existing seed."""
    from credit_risk.pipeline.ingest import frame_fingerprint

    t = synthetic.generate(3000, seed=42, shift=shift)
    got = [frame_fingerprint(t[name])[:16] for name in ("customers", "loans", "bureau")]
    assert (*got, frame_fingerprint(synthetic.outcomes(t))[:16]) == expected


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
    folder = settings.data.dir / "lauki_synthetic"
    synthetic.write(synthetic.generate(500, seed=3), folder)
    (folder / f"{missing}.csv").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    with pytest.raises(IngestError, match=rf"source table not found: .*{missing}\.csv"):
        pipeline.ingest_step(settings, "run-1")
    with pytest.raises(IngestError, match="credit-risk generate-data"):
        pipeline.run_all(settings, "run-2")
    # Nothing regenerated, nothing snapshotted, nothing published.
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not list(settings.data.runs_dir.glob("*/raw/snapshot.json"))
    assert Registry(settings.registry.url).versions() == []


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


def test_outcomes_are_the_drawn_defaults_with_their_dates():
    tables = synthetic.generate(2000, seed=4)
    out = synthetic.outcomes(tables, seed=4)
    loans = tables["loans"]
    assert list(out.columns) == ["application_id", "defaulted", "observed_at"]
    assert (out["application_id"] == loans["loan_id"]).all()
    assert (out["defaulted"] == loans["default"]).all()
    months = ((pd.to_datetime(out["observed_at"]).dt.to_period("M")
               - pd.to_datetime(loans["disbursal_date"]).dt.to_period("M")).apply(lambda d: d.n))
    assert (months[~out["defaulted"]] == 12).all()
    assert months[out["defaulted"]].between(1, 12).all() and months[out["defaulted"]].nunique() > 6
    again = synthetic.generate(2000, seed=4)  # writing outcomes changes no table
    for name in tables:
        pd.testing.assert_frame_equal(tables[name], again[name])


def test_the_shifted_default_mechanism_differs():
    """A model of the reference process (its own logit, without noise) ranks and calibrates
    the shifted batch worse: the truth the performance monitor must find."""
    from sklearn.metrics import roc_auc_score

    def reference_pd(t):
        c, loans, b = t["customers"], t["loans"], t["bureau"]
        income = c["income"].replace(0, c["income"].median())
        avg_dpd = (b["total_dpd"] / b["delinquent_months"].clip(lower=1)).where(
            b["delinquent_months"] > 0, 0.0)
        logit = (synthetic.INTERCEPT + 0.12 * b["credit_utilization_ratio"]
                 + 20 * b["delinquent_months"] / b["total_loan_months"]
                 + 1.2 * (loans["loan_amount"] / income).clip(upper=6) + 0.09 * avg_dpd
                 + loans["loan_purpose"].map(synthetic.PURPOSE_LOGIT).fillna(0.8)
                 + c["residence_type"].map(synthetic.RESIDENCE_LOGIT).fillna(0.0))
        return 1 / (1 + np.exp(-logit)), loans["default"]

    p, y = reference_pd(synthetic.generate(20_000, seed=8))
    ps, ys = reference_pd(synthetic.generate(20_000, seed=8, shift=True))
    assert roc_auc_score(y, p) > 0.96 and abs(y.mean() - p.mean()) < 0.01
    assert roc_auc_score(ys, ps) < roc_auc_score(y, p) - 0.07
    assert ys.mean() > ps.mean() + 0.04


def test_generate_data_writes_outcomes(tmp_path, monkeypatch, capsys):
    from credit_risk.cli import main

    monkeypatch.chdir(tmp_path)
    apps, outcomes = tmp_path / "apps.csv", tmp_path / "outcomes.csv"
    assert main(["generate-data", "--customers", "300", "--shift", "--applications", str(apps),
                 "--outcomes", str(outcomes)]) == 0
    a, o = pd.read_csv(apps), pd.read_csv(outcomes)
    assert (a["loan_id"] == o["application_id"]).all() and o["defaulted"].dtype == bool
    assert "outcomes: 300 rows" in capsys.readouterr().out
    assert not (tmp_path / "var").exists()  # no tables written beside them
