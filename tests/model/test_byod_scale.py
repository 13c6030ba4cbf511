"""Bring your own data: a generated single table with SBA-like column names and dirty
categories, trained by its spec alone (XGBoost, the default search settings), and checked for
what it learned. The same table at 200,000 rows, timed: benchmarks/bench_byod_scale.py."""

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from credit_risk.pipeline import steps as pipeline
from credit_risk.pipeline.bundle import frame_records
from credit_risk.registry import Registry
from credit_risk.scoring.scorer import Scorer
from tests.conftest import small_settings

ROWS = 50_000
SPEC = """
name: sba_like
description: Small-business loans with SBA-like columns (generated for a test).
tables:
  loans: {{source: "{csv}", key: LoanNr_ChkDgt}}
base: loans
target: {{column: MIS_Status, positive: CHGOFF, label: charged off}}
columns:
  LoanNr_ChkDgt: {{role: id}}
  Name: {{role: ignored}}
  BankState: {{role: ignored}}
  State: {{role: categorical, label: Borrower state}}
  NAICS: {{role: categorical, label: Industry sector, missing_values: ["0"]}}
  Term: {{role: numeric, label: Term, unit: months, min: 0, max: 600, integer: true,
         monotone: decreasing}}
  NoEmp: {{role: numeric, label: Employees, min: 0, max: 10000, integer: true,
          max_null_rate: 0.01}}
  UrbanRural: {{role: categorical, label: Urban or rural, missing_values: ["0"]}}
  RevLineCr: {{role: categorical, label: Revolving line of credit, categories: [Y, N],
              replace: {{"0": N}}, missing_values: [T, "`"], default: N}}
  LowDoc: {{role: categorical, label: LowDoc program, categories: [Y, N],
           replace: {{"1": Y}}, missing_values: [C], default: N}}
  GrAppv: {{role: numeric, label: Gross amount approved, unit: USD, min: 1, max: 1.0e+8}}
  SBA_Appv: {{role: numeric, label: SBA guaranteed amount, unit: USD, min: 0, max: 1.0e+8,
             feature: false}}
  MIS_Status: {{role: target}}
derived:
  guaranteed_share:
    expr: SBA_Appv / GrAppv
    label: Share guaranteed by the SBA
    monotone: decreasing
"""
STATES = ["CA", "TX", "NY", "FL", "PA", "OH", "IL", "MA", "MN", "NJ", "WA", "GA", "WI", "MO",
          "UT", "CO", "MI", "IN", "NC", "VA", "CT", "OR", "AZ", "NH", "KS", "IA", "ID", "LA",
          "OK", "MD", "RI", "MT", "NE", "ME", "KY", "TN", "SC", "NV", "AL", "VT", "NM", "AR",
          "ND", "MS", "SD", "HI", "WV", "DE", "WY", "AK", "DC"]
SECTORS = ["44", "72", "23", "54", "81", "42", "33", "62", "56", "45", "53", "71", "31", "48"]


def sba_like(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """The table and each row's true P(charge-off) (about 17.6% charged off). Dirty as the SBA
    data: RevLineCr holds `0` (a recorded N), `T` and `` ` `` (unknown) besides Y/N; LowDoc
    holds `1` (a Y) and `C` (unknown); NAICS and UrbanRural hold 0 for "not recorded"; a few
    NoEmp are missing; category labels come with stray spaces."""
    rng = np.random.default_rng(seed)
    state = rng.choice(STATES, n, p=np.linspace(3, 1, len(STATES)) / np.linspace(
        3, 1, len(STATES)).sum())
    state_effect = dict(zip(STATES, rng.normal(0, 0.4, len(STATES)), strict=True))
    sector = rng.choice(SECTORS, n)
    sector_effect = dict(zip(SECTORS, rng.normal(0, 0.5, len(SECTORS)), strict=True))
    term = np.clip(rng.choice([36, 60, 84, 120, 180, 240, 300], n) + rng.integers(-6, 7, n),
                   1, 480)
    employees = np.maximum(rng.lognormal(1.6, 1.1, n).round(), 0)
    urban = rng.choice([1, 2], n, p=[0.7, 0.3])
    revolving = rng.random(n) < 0.35
    lowdoc = rng.random(n) < 0.12
    gross = (rng.lognormal(11.3, 1.0, n) / 100).round() * 100 + 1000
    share = np.clip(rng.normal(0.65, 0.12, n), 0.15, 0.9)
    logit = (-2.05 - 0.017 * (term - 100) + 0.9 * revolving - 0.5 * lowdoc + 0.45 * (urban == 1)
             - 1.6 * (share - 0.65) - 0.15 * np.log1p(employees)
             + np.array([state_effect[s] for s in state])
             + np.array([sector_effect[s] for s in sector]) + rng.normal(0, 0.8, n))
    p = 1 / (1 + np.exp(-logit))
    charged_off = rng.random(n) < p

    rev = np.where(revolving, "Y", "N").astype(object)
    rev[~revolving & (rng.random(n) < 0.3)] = "0"  # a recorded N
    rev[rng.random(n) < 0.03] = "T"
    rev[rng.random(n) < 0.005] = "`"
    low = np.where(lowdoc, "Y", "N").astype(object)
    low[lowdoc & (rng.random(n) < 0.2)] = "1"
    low[rng.random(n) < 0.01] = "C"
    sector_raw = sector.astype(object)
    sector_raw[rng.random(n) < 0.05] = "0"
    urban_raw = np.where(rng.random(n) < 0.1, 0, urban)
    state_raw = state.astype(object)
    spaced = rng.random(n) < 0.01
    state_raw[spaced] = [f"{s} " for s in state[spaced]]  # "CA " for "CA"
    noemp = employees.astype(float)
    noemp[rng.random(n) < 0.002] = np.nan
    frame = pd.DataFrame({
        "LoanNr_ChkDgt": np.arange(1_000_003, 1_000_003 + 10 * n, 10),
        "Name": [f"Business {i}" for i in range(n)],
        "BankState": rng.choice(STATES, n), "State": state_raw, "NAICS": sector_raw,
        "Term": term, "NoEmp": noemp, "UrbanRural": urban_raw, "RevLineCr": rev,
        "LowDoc": low, "GrAppv": gross, "SBA_Appv": (gross * share).round(2),
        "MIS_Status": np.where(charged_off, "CHGOFF", "P I F"),
    })
    return frame, p


@pytest.fixture(scope="module")
def sba_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("sba")
    frame, p = sba_like(ROWS)
    frame.to_csv(base / "sba.csv", index=False)
    (base / "sba.yaml").write_text(SPEC.format(csv=base / "sba.csv"))
    settings = small_settings(base, dataset_spec=str(base / "sba.yaml"), models=("xgboost",),
                              search_iterations=4)  # the default search, on XGBoost alone
    version = pipeline.run_all(settings, "sba")
    return settings, version, frame, p


def test_a_single_table_trains_and_publishes(sba_run):
    settings, version, *_ = sba_run
    manifest = Registry(settings.registry.url).manifest(version)
    assert manifest["dataset"] == "sba_like" and manifest["model"] == "xgboost"
    split = manifest["comparison"][0]["test"]
    assert split["n"] == pytest.approx(0.2 * ROWS, rel=0.05)


def test_it_learns_nearly_what_the_generator_knows(sba_run):
    settings, version, frame, p = sba_run
    manifest = Registry(settings.registry.url).manifest(version)
    test = pd.read_parquet(next(settings.data.runs_dir.glob("*/split/test.parquet")))
    truth = pd.Series(p, index=frame["LoanNr_ChkDgt"]).loc[test["LoanNr_ChkDgt"]].to_numpy()
    best_possible = roc_auc_score(test["__target__"], truth)
    assert 0.5 < best_possible - 0.05 < manifest["metrics"]["roc_auc"] <= best_possible + 0.01
    assert manifest["metrics"]["ece"] < 0.02  # calibrated on out-of-fold PDs
    assert registry_champion(settings) == version, manifest["rejection_reasons"]


def test_the_spec_s_columns_are_the_model_s_inputs(sba_run):
    settings, version, *_ = sba_run
    manifest = Registry(settings.registry.url).manifest(version)
    assert {f["name"] for f in manifest["inputs"]} == {
        "State", "NAICS", "Term", "NoEmp", "UrbanRural", "RevLineCr", "LowDoc", "GrAppv",
        "SBA_Appv"}
    features = manifest["features"]
    assert "guaranteed_share" in features and "Term" in features
    assert not any(f.startswith(("Name", "BankState", "LoanNr")) for f in features)
    assert sum(f.startswith("State=") for f in features) == len(STATES)  # "CA " cleaned


def test_dirty_categories_are_cleaned_as_the_spec_says(sba_run):
    settings, version, frame, *_ = sba_run
    candidate = joblib.load(next(settings.data.runs_dir.glob("*/candidates/xgboost.joblib")))
    features = candidate.model.features
    assert features.categories_["RevLineCr"] == ["Y", "N"]
    assert features.categories_["LowDoc"] == ["Y", "N"]
    assert "0" not in features.categories_["NAICS"] and "0" not in features.categories_[
        "UrbanRural"]
    scorer = Scorer.load(Registry(settings.registry.url), version)
    rows = frame.sample(2000, random_state=1).drop(columns=["MIS_Status"])
    score = scorer.plan.predict_records

    def pd_with(column, value):
        return score(frame_records(rows.assign(**{column: value})))

    mode = features.modes_["RevLineCr"]
    np.testing.assert_array_equal(pd_with("RevLineCr", "0"), pd_with("RevLineCr", "N"))
    np.testing.assert_array_equal(pd_with("RevLineCr", "T"), pd_with("RevLineCr", mode))
    np.testing.assert_array_equal(pd_with("RevLineCr", "`"), pd_with("RevLineCr", None))
    np.testing.assert_array_equal(pd_with("LowDoc", "1"), pd_with("LowDoc", "Y"))
    # what the data says: a revolving line raises the risk, all else equal
    assert pd_with("RevLineCr", "Y").mean() > pd_with("RevLineCr", "N").mean() + 0.03


def registry_champion(settings):
    return Registry(settings.registry.url).alias_version("champion")
