"""Settings of the data, the registry, training, scoring and the gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from credit_risk.config.base import (
    DEFAULT_MODELS,
    Group,
    _blank_is_none,
    _path_or_url,
    _split,
    env,
)


class DataSettings(Group):
    title: ClassVar[str] = "Data"
    dir: Path = Field(Path("var/data"), alias=env("data_dir"),
                      description="Folder of the source tables (generated or your own).")
    runs_dir: Annotated[Path | str, BeforeValidator(_path_or_url)] = Field(
        Path("var/runs"), alias=env("runs_dir"),
        description="Run folders: a local folder or an object store URL (s3://bucket/runs).")
    spec: str = Field("lauki_synthetic", alias=env("dataset_spec"),
                      description="A built-in dataset spec name or the path of a YAML spec.")
    n_customers: int = Field(50_000, ge=100, alias=env("n_customers"),
                             description="Customers the synthetic generator writes.")
    seed: int = Field(42, alias=env("data_seed"), description="Seed of the synthetic data.")


class RegistrySettings(Group):
    title: ClassVar[str] = "Registry"
    url: str = Field("var/registry", alias=env("registry_url"),
                     description="Registry root: a local folder or s3://bucket/prefix.")
    dataset: str | None = Field(
        None, alias=env("dataset"),
        description="In a registry of several datasets, the one whose champion serving, "
                    "predict and monitoring use and rollback changes; unset: the only one, "
                    "else the spec's.")

    @field_validator("dataset", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_is_none(value)


class SigningSettings(Group):
    title: ClassVar[str] = "Signing"
    key_file: Path | None = Field(
        None, alias=env("signing_key_file"),
        description="Ed25519 private key (PEM) that publish, promote and rollback sign with.")
    trusted_keys: Annotated[tuple[Path, ...], NoDecode] = Field(
        (), alias=env("trusted_keys"),
        description="Public keys (PEM files, comma-separated; several during a key "
                    "rotation) whose signatures are accepted; none: nothing is verified.")

    @field_validator("key_file", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_is_none(value)

    @field_validator("trusted_keys", mode="before")
    @classmethod
    def _paths(cls, value: object) -> object:
        return _split(value)


class TrainingSettings(Group):
    title: ClassVar[str] = "Training"
    seed: int = Field(42, alias=env("seed"), description="Seed of splits, folds and models.")
    test_size: float = Field(0.2, gt=0.0, lt=0.5, alias=env("test_size"),
                             description="Share of rows held out as the untouched test set.")
    cv_folds: int = Field(3, ge=2, le=10, alias=env("cv_folds"),
                          description="Cross-validation folds of the search.")
    search_iterations: int = Field(4, ge=1, le=100, alias=env("search_iterations"),
                                   description="Hyperparameter trials per candidate.")
    search_time_budget_s: float | None = Field(
        None, gt=0, alias=env("search_time_budget_s"),
        description="Stop a candidate's search after this many seconds.")
    search_strategy: Literal["random", "halving"] = Field(
        "halving", alias=env("search_strategy"),
        description="halving: trials on growing samples, the best 1/factor kept each rung; "
                    "random: every trial on all rows.")
    halving_factor: int = Field(3, ge=2, le=10, alias=env("halving_factor"),
                                description="Successive halving's factor.")
    halving_min_rows: int = Field(5_000, ge=100, alias=env("halving_min_rows"),
                                  description="Rows of the first halving rung.")
    smote_ratio: float = Field(0.5, gt=0, le=1, alias=env("smote_ratio"),
                               description="SMOTE grows each training fold's minority class "
                                           "to this share of the majority (1.0: balanced).")
    early_stopping_rounds: int = Field(
        30, ge=0, alias=env("early_stopping_rounds"),
        description="XGBoost stops after this many rounds without a better ROC-AUC (0: off).")
    early_stopping_fraction: float = Field(
        0.1, gt=0, lt=0.5, alias=env("early_stopping_fraction"),
        description="Share of each fold's training rows held out for early stopping.")
    forest_max_tree_rows: int = Field(
        50_000, ge=1_000, alias=env("forest_max_tree_rows"),
        description="A random forest tree draws half the rows, at most this many.")
    models: tuple[str, ...] = Field(DEFAULT_MODELS, alias=env("models"),
                                    description="Candidates trained and compared.")


class ScoreSettings(Group):
    title: ClassVar[str] = "Credit score"
    base: float = Field(600.0, alias=env("score_base"),
                        description="Score at the base odds (score = offset + factor ln odds).")
    base_odds: float = Field(30.0, gt=0, alias=env("score_base_odds"),
                             description="Good:bad odds at the base score.")
    pdo: float = Field(40.0, gt=0, alias=env("score_pdo"),
                       description="Points to double the odds.")
    min: int = Field(300, alias=env("score_min"), description="Lowest score.")
    max: int = Field(900, alias=env("score_max"), description="Highest score.")


class ValidationSettings(Group):
    title: ClassVar[str] = "Data validation"
    model_config = SettingsConfigDict(populate_by_name=True, extra="forbid",
                                      env_nested_delimiter="__")
    gx_dir: Path = Field(Path("great_expectations"), alias=env("gx_dir"),
                         description="The Great Expectations file context.")
    min_rows: int = Field(100, ge=0, alias=env("validation_min_rows"),
                          description="Rows each raw table needs, unless overrides say.")
    max_rows: int | None = Field(None, ge=1, alias=env("validation_max_rows"),
                                 description="Rows a raw table may have at most.")
    null_warning: float = Field(0.5, ge=0, le=1, alias=env("validation_null_warning"),
                                description="Warn at this share of a null limit.")
    severity: dict[str, Literal["blocking", "warning"]] = Field(
        default_factory=dict, alias=env("validation_severity"),
        description="Severity per expectation kind (JSON, or __-nested variables).")
    strict: bool = Field(False, alias=env("validation_strict"),
                         description="Warnings block the run too.")


class GateSettings(Group):
    title: ClassVar[str] = "Approval gate"
    min_roc_auc: float = Field(0.70, ge=0.5, le=1.0, alias=env("min_roc_auc"),
                               description="Lowest test ROC-AUC approved.")
    max_ece: float = Field(0.05, gt=0, le=1, alias=env("max_ece"),
                           description="Highest expected calibration error approved.")
    min_approval_ratio: float = Field(
        0.8, ge=0, le=1, alias=env("min_approval_ratio"),
        description="Lowest ratio of the lowest to the highest group approval rate.")
    fairness_min_group_size: int = Field(
        30, ge=1, alias=env("fairness_min_group_size"),
        description="Smaller groups are reported, not judged.")
    champion_margin: float = Field(
        0.0, ge=-0.1, le=0.1, alias=env("champion_margin"),
        description="ROC-AUC by which a challenger must beat the champion.")
