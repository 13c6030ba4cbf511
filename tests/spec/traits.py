"""Small generated CSV files with the traits `spec init` must recognise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def applications(n: int = 2000, seed: int = 3) -> pd.DataFrame:
    """Applications with an id, numbers, coded categories (0/1/2 and 1/2), yes/no values, a
    leak by name (recoveries), a leak by separation, a constant and a mostly missing column."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.5, n).round(2)
    urban_rural = rng.integers(0, 3, n)
    new_or_existing = rng.integers(1, 3, n)
    guarantor = rng.choice(["yes", "no"], n, p=[0.3, 0.7])
    utilisation = rng.uniform(0, 100, n).round(1)
    logit = (-2.5 + 0.04 * (utilisation - 50) - 0.8 * (income > np.exp(10.5))
             + 0.7 * (urban_rural == 2) - 0.6 * (guarantor == "yes")
             + rng.normal(0, 0.8, n))
    default = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    notes_score = np.where(rng.uniform(size=n) < 0.8, np.nan, rng.uniform(0, 1, n).round(3))
    return pd.DataFrame({
        "loan_id": [f"L{i:05d}" for i in range(n)],
        "income": income,
        "utilisation": utilisation,
        "UrbanRural": urban_rural,
        "NewExist": new_or_existing,
        "guarantor": guarantor,
        "recoveries": np.where(default == 1, rng.uniform(100, 900, n).round(2), 0.0),
        "months_in_arrears_at_close": default * rng.integers(3, 12, n),
        "country": "DE",
        "notes_score": notes_score,
        "default": default,
    })


def write(path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(path, index=False)
    return path
