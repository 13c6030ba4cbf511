"""One typed settings object, read from the environment (prefix ``CREDIT_RISK_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODELS = ("logistic_regression", "random_forest", "xgboost")


class Settings(BaseSettings):
    """Everything a run or the serving app needs; nothing is read at import time."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_", env_nested_delimiter="__")

    # Where things live. Relative paths are relative to the working directory.
    data_dir: Path = Path("var/data")
    runs_dir: Path = Path("var/runs")
    registry_url: str = "var/registry"
    dataset_spec: str = "lauki_synthetic"  # a built-in spec name or a path to a YAML spec

    # Synthetic data.
    n_customers: int = Field(50_000, ge=100)
    data_seed: int = 42

    # Modelling.
    seed: int = 42
    test_size: float = Field(0.2, gt=0.0, lt=0.5)
    cv_folds: int = Field(3, ge=2, le=10)
    search_iterations: int = Field(4, ge=1, le=100)
    models: tuple[str, ...] = DEFAULT_MODELS
    calibration: str = Field("isotonic", pattern="^(isotonic|sigmoid)$")
    pd_floor: float = Field(0.0003, ge=0, lt=0.5)  # no PD below this (the Basel floor, 0.03%)

    # Threshold policy: minimise expected cost of decisions on validation data.
    cost_missed_default: float = Field(5.0, gt=0)
    cost_rejected_good: float = Field(1.0, gt=0)

    # Credit score scaling: score = offset + factor * ln(odds_good).
    score_base: float = 600.0
    score_base_odds: float = Field(30.0, gt=0)
    score_pdo: float = Field(40.0, gt=0)
    score_min: int = 300
    score_max: int = 900

    # Approval gate.
    min_roc_auc: float = Field(0.70, ge=0.5, le=1.0)
    champion_margin: float = Field(0.0, ge=-0.1, le=0.1)

    # Serving.
    reload_interval_s: float = Field(10.0, ge=0)
    max_batch_rows: int = Field(10_000, ge=1)
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    decision_log: Path | None = Path("var/decisions/decisions.jsonl")  # None: do not log
    n_reasons: int = Field(3, ge=0, le=10)
