import pandas as pd

from credit_risk.datasets import synthetic


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
