"""Seeded generator of the default three-table dataset (customers, loans, bureau).

It mirrors the schema of the "Lauki Finance" NBFC teaching dataset. The
generating process, in order:

1. Customers: age ~ N(40, 11) clipped to 18-70; gender M/F (70/30); marital
   status Married with probability rising with age; employment Salaried/Self-
   Employed (60/40); income ~ lognormal (median about 1.1M INR, higher for the
   salaried and with age); about 0.02% of incomes are recorded as 0 (a data-entry
   quirk); dependants 0-5 (more when married); residence Owned/Mortgage/Rented
   (55/20/25, about 0.1% missing); years at address 1-35 (bounded by age);
   city/state/zipcode from ten Indian cities.
2. Loans (one per customer): purpose Home/Personal/Auto/Education (30/25/25/20,
   with about 0.03% typo rows "Personaal"); Home and Auto are Secured, Personal
   and Education mostly Unsecured; loan_amount = income x a purpose-dependent
   lognormal multiple; sanction >= loan; processing fee about 2% of the loan
   (about 0.02% outliers at 30-80%); GST 18% of the fee; net disbursement = loan -
   fee - GST; tenure 6-59 months; principal outstanding a share of the loan;
   bank balance ~ income x lognormal; disbursal dates in 2019-2024.
3. Bureau: open accounts 1-4, closed 0-2, total loan months ~ accounts x U(6, 36);
   a latent "credit behaviour" z ~ N(0, 1) drives delinquency (Poisson with a
   rate rising in z), DPD per delinquent month, enquiries and utilisation.
4. Default: logit = b0 + 12 util + 20 delinquency_ratio + 1.2 min(loan_to_income, 6)
   + 0.09 avg_dpd_per_delinquency + purpose effect (Education +1.2, Personal +0.8,
   Home -0.6) + residence effect (Rented +0.9, Owned -0.4) + N(0, 0.6) noise, with
   util in 0-1 and b0 = -14.88, which gives an 8.6% default rate. The noise
   keeps the best achievable ROC-AUC near 0.98, well below 1.

``shift=True`` produces a drifted batch: utilisation is pushed up, the purpose mix
moves towards Personal and Education, and incomes fall by about 15% (feature drift);
and its default mechanism changes too (concept drift, `SHIFTED`): an income shock hits
the self-employed (+1.0), utilisation and delinquency weigh less (6 and 12 instead of
12 and 20), more of the risk is unobserved (noise sd 1.5 instead of 0.6) and the intercept
is b0 + 4.5. The shifted population then defaults at about 19% where the reference
process's own PDs average about 14%, and those PDs rank it with a ROC-AUC near 0.87
instead of 0.97: a model trained on unshifted data is worse calibrated and less
discriminating on it. The unshifted tables are the same, draw for draw, as before.

5. Outcomes (`outcomes()`, `credit-risk generate-data --outcomes FILE.csv`): one row per
   loan, `application_id` (the loan_id, the id column of the applications CSV),
   `defaulted` (the `default` drawn above: the truth, never a model's guess) and
   `observed_at`: for a default, the disbursal date plus U(1, months_on_book) months (the
   month it went bad); for a good loan, the disbursal date plus `months_on_book` (12)
   months, when it is known to have survived the performance window. Drawn from their own
   generator (seed, 1), so the tables do not change when outcomes are written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from credit_risk.spec.dataset import DatasetSpec, load_spec

if TYPE_CHECKING:
    from credit_risk.config import Settings

CITIES = [
    ("Mumbai", "Maharashtra", "400001"),
    ("Pune", "Maharashtra", "411001"),
    ("Delhi", "Delhi", "110001"),
    ("Bangalore", "Karnataka", "560001"),
    ("Chennai", "Tamil Nadu", "600001"),
    ("Hyderabad", "Telangana", "500001"),
    ("Kolkata", "West Bengal", "700001"),
    ("Ahmedabad", "Gujarat", "380001"),
    ("Jaipur", "Rajasthan", "302001"),
    ("Lucknow", "Uttar Pradesh", "226001"),
]
PURPOSES = ["Home", "Personal", "Auto", "Education"]
PURPOSE_LOGIT = {"Home": -0.6, "Personal": 0.8, "Auto": 0.0, "Education": 1.2}
RESIDENCE_LOGIT = {"Owned": -0.4, "Mortgage": 0.0, "Rented": 0.9}
SHIFT_INTERCEPT = 4.5  # the shifted process's intercept on top of INTERCEPT
INTERCEPT = -14.88  # gives an 8.6% default rate on the reference process


@dataclass(frozen=True)
class Mechanism:
    """The default process's coefficients that the shifted batch changes."""

    intercept: float
    util: float  # per unit of utilisation (0-1)
    delinquency: float  # per unit of delinquency ratio
    self_employed: float
    noise: float  # sd of the unobserved part of the logit


REFERENCE = Mechanism(INTERCEPT, util=12.0, delinquency=20.0, self_employed=0.0, noise=0.6)
SHIFTED = Mechanism(INTERCEPT + SHIFT_INTERCEPT, util=6.0, delinquency=12.0, self_employed=1.0,
                    noise=1.5)


def generate(
    n_customers: int = 50_000, seed: int = 42, shift: bool = False
) -> dict[str, pd.DataFrame]:
    """Return the customers, loans and bureau tables."""
    # Vectorised (a category is drawn as an index, then looked up), with the draws of the
    # first version in the same order: the same tables for the same seed, at any size.
    rng = np.random.default_rng(seed)
    n = n_customers
    cust_id = np.array([f"C{i:05d}" for i in range(1, n + 1)], dtype=object)

    age = np.clip(rng.normal(40, 11, n).round(), 18, 70).astype(int)
    gender = _pick(["M", "F"], rng.choice(2, n, p=[0.7, 0.3]))
    married = rng.random(n) < np.clip((age - 18) / 30, 0.1, 0.85)
    marital = _pick(["Single", "Married"], married.astype(int))
    salaried = rng.random(n) < 0.6
    employment = _pick(["Self-Employed", "Salaried"], salaried.astype(int))
    income = np.exp(rng.normal(13.9 + 0.1 * salaried + 0.006 * (age - 40), 0.55, n))
    if shift:
        income *= 0.85
    income = income.round(-3)
    income[rng.random(n) < 0.0002] = 0
    dependants = np.clip(rng.poisson(np.where(married, 2.0, 0.4)), 0, 5)
    residence_idx = rng.choice(len(RESIDENCE_LOGIT), n, p=[0.55, 0.20, 0.25])
    residence = _pick(list(RESIDENCE_LOGIT), residence_idx)
    no_residence = rng.random(n) < 0.001
    residence[no_residence] = None
    years_at_address = np.minimum(rng.integers(1, 36, n), np.maximum(age - 17, 1))
    city_idx = rng.integers(0, len(CITIES), n)
    customers = pd.DataFrame(
        {
            "cust_id": cust_id,
            "age": age,
            "gender": gender,
            "marital_status": marital,
            "employment_status": employment,
            "income": income.astype(np.int64),
            "number_of_dependants": dependants,
            "residence_type": residence,
            "years_at_current_address": years_at_address,
            "city": _pick([c[0] for c in CITIES], city_idx),
            "state": _pick([c[1] for c in CITIES], city_idx),
            "zipcode": _pick([c[2] for c in CITIES], city_idx),
        }
    )

    purpose_p = [0.2, 0.35, 0.15, 0.3] if shift else [0.3, 0.25, 0.25, 0.2]
    purpose_idx = rng.choice(len(PURPOSES), n, p=purpose_p)
    purpose = _pick(PURPOSES, purpose_idx)
    secured = np.isin(purpose_idx, [PURPOSES.index("Home"), PURPOSES.index("Auto")]) | (
        rng.random(n) < 0.1)
    multiple = {"Home": 3.0, "Personal": 0.8, "Auto": 1.2, "Education": 1.5}
    mult = np.array([multiple[p] for p in PURPOSES])[purpose_idx] * np.exp(rng.normal(0, 0.5, n))
    loan_amount = np.maximum((np.where(income > 0, income, 1e6) * mult).round(-3), 10_000)
    sanction = (loan_amount * rng.uniform(1.0, 1.3, n)).round(-3)
    fee = loan_amount * rng.normal(0.02, 0.002, n).clip(0.01, 0.03)
    fee_outlier = rng.random(n) < 0.0002
    fee[fee_outlier] = loan_amount[fee_outlier] * rng.uniform(0.3, 0.8, fee_outlier.sum())
    fee = fee.round(2)
    gst = (fee * 0.18).round(2)
    day = rng.integers(0, 6 * 365, n)  # the disbursal day; each distinct date made once
    first = pd.Timestamp("2019-01-01")
    disbursal = _pick((first + pd.to_timedelta(np.arange(6 * 365), "D")).date, day)
    installment = _pick((first + pd.to_timedelta(np.arange(6 * 365) + 30, "D")).date, day)
    loans = pd.DataFrame(
        {
            "loan_id": [f"L{i:05d}" for i in range(1, n + 1)],
            "cust_id": cust_id,
            "loan_purpose": purpose,
            "loan_type": _pick(["Unsecured", "Secured"], secured.astype(int)),
            "sanction_amount": sanction.astype(np.int64),
            "loan_amount": loan_amount.astype(np.int64),
            "processing_fee": fee,
            "gst": gst,
            "net_disbursement": (loan_amount - fee - gst).round(2),
            "loan_tenure_months": rng.integers(6, 60, n),
            "principal_outstanding": (loan_amount * rng.uniform(0.05, 0.95, n)).round(0),
            "bank_balance_at_application": (
                np.where(income > 0, income, 1e6) * np.exp(rng.normal(-0.5, 0.6, n))
            ).round(0),
            "disbursal_date": disbursal,
            "installment_start_dt": installment,
        }
    )

    z = rng.normal(0, 1, n)  # latent credit behaviour
    open_acc = rng.integers(1, 5, n)
    closed_acc = rng.integers(0, 3, n)
    total_months = np.maximum(((open_acc + closed_acc) * rng.uniform(6, 36, n)).round(), 1)
    delinq_rate = np.clip(0.08 * np.exp(0.9 * z), 0, 0.6)
    delinquent = np.minimum(rng.poisson(delinq_rate * total_months * 0.5), total_months)
    dpd_per = np.clip(rng.normal(8 + 6 * np.maximum(z, 0), 5, n), 1, 60)
    total_dpd = (delinquent * dpd_per).round()
    util_center = 35 + 15 * z + (12 if shift else 0)
    util = np.clip(rng.normal(util_center, 12, n).round(), 0, 99)
    enquiries = rng.poisson(np.clip(2 + z, 0.5, 6))
    bureau = pd.DataFrame(
        {
            "cust_id": cust_id,
            "number_of_open_accounts": open_acc,
            "number_of_closed_accounts": closed_acc,
            "total_loan_months": total_months.astype(int),
            "delinquent_months": delinquent.astype(int),
            "total_dpd": total_dpd.astype(int),
            "enquiry_count": enquiries,
            "credit_utilization_ratio": util.astype(int),
        }
    )

    delinquency_ratio = delinquent / total_months
    avg_dpd = np.where(delinquent > 0, total_dpd / np.maximum(delinquent, 1), 0.0)
    true_income = np.where(income > 0, income, np.median(income))
    loan_to_income = loan_amount / true_income
    m = SHIFTED if shift else REFERENCE
    logit = (
        m.intercept
        + m.util * util / 100
        + m.delinquency * delinquency_ratio
        + 1.2 * np.minimum(loan_to_income, 6)
        + 0.09 * avg_dpd
        + np.array([PURPOSE_LOGIT[p] for p in PURPOSES])[purpose_idx]
        + np.where(no_residence, 0.0, np.array(list(RESIDENCE_LOGIT.values()))[residence_idx])
        + m.self_employed * ~salaried
        + rng.normal(0, m.noise, n)
    )
    loans["default"] = rng.random(n) < 1 / (1 + np.exp(-logit))

    typo = rng.random(n) < 0.0003
    loans.loc[typo & (loans["loan_purpose"] == "Personal"), "loan_purpose"] = "Personaal"
    return {"customers": customers, "loans": loans, "bureau": bureau}


def _pick(values: Any, idx: np.ndarray) -> np.ndarray:
    """values[idx] as an object array (each value one shared object, as pandas keeps them)."""
    return np.asarray(values, dtype=object)[idx]


def outcomes(tables: dict[str, pd.DataFrame], seed: int = 42,
             months_on_book: int = 12) -> pd.DataFrame:
    """The observed outcome of each loan: application_id, defaulted, observed_at (a date)."""
    loans = tables["loans"]
    rng = np.random.default_rng([seed, 1])
    disbursed = pd.to_datetime(loans["disbursal_date"])
    defaulted = loans["default"].astype(bool).to_numpy()
    months = np.where(defaulted, rng.integers(1, months_on_book + 1, len(loans)),
                      months_on_book)
    observed = pd.Series(pd.NaT, index=disbursed.index, dtype=disbursed.dtype)
    for k in np.unique(months):  # a month offset per distinct number of months
        at = months == k
        observed[at] = disbursed[at] + pd.DateOffset(months=int(k))
    return pd.DataFrame({"application_id": loans["loan_id"].to_numpy(), "defaulted": defaulted,
                         "observed_at": pd.DatetimeIndex(observed).date})


def write(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "csv",
          progress: Callable[[int, int | None], None] | None = None) -> dict[str, Path]:
    """Write the tables as files, the way any other source would arrive; `progress(rows
    written, rows in all)` is told each table written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    total, done = sum(len(df) for df in tables.values()), 0
    for name, df in tables.items():
        path = out_dir / f"{name}.{fmt}"
        tmp = path.with_suffix(f".{fmt}.tmp")
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        tmp.replace(path)
        paths[name] = path
        done += len(df)
        if progress is not None:
            progress(done, total)
    return paths


def ensure(spec: DatasetSpec, data_dir: Path, n_customers: int, seed: int) -> Path:
    """Generate the spec's source files under data_dir/<spec> unless they are all there.

    An explicit step (`credit-risk generate-data`, scripts/run.sh, tests): ingest never calls
    it, so a missing source file is an error, not a silently regenerated dataset.
    """
    out = data_dir / spec.name
    sources = [out / t.source for t in spec.tables.values() if isinstance(t.source, str)]
    if not all(p.exists() for p in sources):
        write(generate(n_customers, seed), out)
    return out


def ensure_for(settings: Settings) -> Path:
    """ensure() for the settings' dataset spec and size (explicit, as ensure)."""
    spec = load_spec(settings.data.spec)
    return ensure(spec, settings.data.dir, settings.data.n_customers, settings.data.seed)
