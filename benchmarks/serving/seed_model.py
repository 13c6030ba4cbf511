"""The seed-style baseline's preprocessor: pandas ratios, then a scikit-learn ColumnTransformer.

Importable by both the benchmark (which fits it) and seed_app.py (which unpickles it).
"""

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

RATIOS = {
    "loan_to_income": ("loan_amount", "income"),
    "delinquency_ratio": ("delinquent_months", "total_loan_months"),
    "avg_dpd_per_delinquency": ("total_dpd", "delinquent_months"),
}


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for name, (num, den) in RATIOS.items():
        out[name] = (out[num] / out[den].replace(0, np.nan)).replace([np.inf, -np.inf], np.nan) \
            .fillna(0.0)
    return out


def preprocessor(numeric: list[str], categorical: list[str]) -> Pipeline:
    columns = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), numeric + list(RATIOS)),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore"))]), categorical),
    ])
    return Pipeline([("ratios", FunctionTransformer(add_ratios)), ("columns", columns)])
