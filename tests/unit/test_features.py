import numpy as np
import pandas as pd
import pytest

from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.features import FeatureTransformer
from credit_risk.pipeline.ingest import assemble
from credit_risk.pipeline.train import build_pipeline
from credit_risk.scoring.features import FeaturePlan


@pytest.fixture(scope="module")
def frame(tables, spec):
    return assemble(spec, tables)


@pytest.fixture(scope="module")
def fitted(frame, spec):
    return FeatureTransformer(spec).fit(frame)


def _row(fitted, frame, **changes):
    record = {**frame.iloc[0].to_dict(), **changes}
    row = FeaturePlan(fitted.plan_).row(record)[0]
    return dict(zip(fitted.feature_names_out_, row, strict=True))


def test_follows_the_sklearn_contract(spec, frame):
    ft = FeatureTransformer(spec)
    assert not hasattr(ft, "medians_")
    assert ft.fit(frame) is ft
    assert ft.get_params()["spec"] is spec


def test_protected_and_ignored_columns_are_not_features(fitted):
    names = set(fitted.feature_names_out_)
    assert not any(n.startswith(("gender", "marital_status", "city", "cust_id")) for n in names)
    assert {"loan_to_income", "delinquency_ratio", "avg_dpd_per_delinquency",
            "credit_utilization_ratio"} <= names


def test_zero_income_is_imputed_not_a_crash(fitted, frame):
    row = _row(fitted, frame, income=0, loan_amount=1_000_000)
    assert np.isfinite(list(row.values())).all()
    assert row["income"] == fitted.medians_["income"]
    assert row["loan_to_income"] == pytest.approx(1_000_000 / fitted.medians_["income"])


def test_no_delinquency_gives_zero_ratios(fitted, frame):
    row = _row(fitted, frame, delinquent_months=0, total_dpd=0, total_loan_months=0)
    assert row["avg_dpd_per_delinquency"] == 0.0
    assert row["delinquency_ratio"] == 0.0


def test_derived_ratios(fitted, frame):
    row = _row(fitted, frame, delinquent_months=4, total_dpd=60, total_loan_months=40)
    assert row["avg_dpd_per_delinquency"] == 15.0
    assert row["delinquency_ratio"] == 0.1


def test_unknown_category_encodes_as_no_known_category(fitted, frame):
    row = _row(fitted, frame, loan_purpose="Boat")
    assert [v for k, v in row.items() if k.startswith("loan_purpose=")] == [0, 0, 0, 0]


def test_typo_is_cleaned_and_missing_category_takes_the_mode(fitted, frame):
    row = _row(fitted, frame, loan_purpose="Personaal", residence_type=None)
    assert row["loan_purpose=Personal"] == 1.0
    assert row[f"residence_type={fitted.modes_['residence_type']}"] == 1.0


def test_record_path_equals_frame_path(fitted, frame):
    sample = frame.sample(300, random_state=0)
    sample.loc[sample.index[:5], "income"] = 0
    sample.loc[sample.index[5:8], "residence_type"] = None
    by_frame = fitted.transform(sample)
    rows = FeaturePlan(fitted.plan_)
    records = sample.to_dict("records")
    by_record = np.vstack([rows.row(r) for r in records])
    np.testing.assert_allclose(rows.matrix(records), by_frame)
    np.testing.assert_allclose(by_record, by_frame)


def test_missing_required_column_is_named(spec, frame):
    with pytest.raises(KeyError, match="credit_utilization_ratio") as caught:
        FeatureTransformer(spec).fit(frame.drop(columns=["credit_utilization_ratio"]))
    assert isinstance(caught.value, CreditRiskError)  # bad data: a user error, not retried
    assert str(caught.value) == "columns missing from the data: credit_utilization_ratio"


def test_an_unknown_model_is_a_user_error(spec):
    with pytest.raises(CreditRiskError, match="unknown model 'gpt'"):
        build_pipeline("gpt", spec, [], seed=0)


def test_monotone_constraints_follow_the_spec(fitted):
    signs = dict(zip(fitted.feature_names_out_, fitted.monotone_constraints(), strict=True))
    assert signs["credit_utilization_ratio"] == 1
    assert signs["delinquency_ratio"] == 1
    assert signs["age"] == 0


def test_text_in_numeric_column_becomes_missing(fitted, frame):
    bad = frame.head(3).copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[bad.index[0], "age"] = "forty"
    out = pd.DataFrame(fitted.transform(bad), columns=fitted.feature_names_out_)
    assert out.loc[0, "age"] == fitted.medians_["age"]
