"""One typed settings object, read from the environment (prefix ``CREDIT_RISK_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODELS = ("logistic_regression", "random_forest", "xgboost")


def _path_or_url(value: object) -> object:
    """A local folder as a Path; an fsspec URL (s3://bucket/runs) kept as the string it is
    (a Path would fold its "//")."""
    if isinstance(value, str):
        return value.rstrip("/") if "://" in value else Path(value)
    return value


class Settings(BaseSettings):
    """Everything a run or the serving app needs; nothing is read at import time."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_", env_nested_delimiter="__")

    # Where things live. Relative paths are relative to the working directory.
    data_dir: Path = Path("var/data")
    # A local folder, or an object store URL (s3://bucket/runs; see README "Configuration").
    runs_dir: Annotated[Path | str, BeforeValidator(_path_or_url)] = Path("var/runs")
    registry_url: str = "var/registry"
    dataset_spec: str = "lauki_synthetic"  # a built-in spec name or a path to a YAML spec
    # The dataset whose champion serving, `credit-risk predict` and monitoring use, and whose
    # aliases `models rollback` changes, in a registry of several datasets (README "Many
    # portfolios in one registry"). Unset: the registry's only dataset; of several, the
    # dataset of dataset_spec (serving, predict, monitoring; a rollback must name one).
    dataset: str | None = None

    # Signed manifests (see README "Security"). The publisher signs with the private key
    # (PEM, Ed25519); serving, promote, rollback and the champion comparison accept only
    # versions signed by one of the trusted public keys (PEM; comma-separated in
    # CREDIT_RISK_TRUSTED_KEYS, several during a key rotation). No trusted keys: not verified.
    signing_key_file: Path | None = None
    trusted_keys: Annotated[tuple[Path, ...], NoDecode] = ()

    # Synthetic data.
    n_customers: int = Field(50_000, ge=100)
    data_seed: int = 42

    # Modelling.
    seed: int = 42
    test_size: float = Field(0.2, gt=0.0, lt=0.5)
    cv_folds: int = Field(3, ge=2, le=10)
    search_iterations: int = Field(4, ge=1, le=100)
    search_time_budget_s: float | None = Field(None, gt=0)  # stop a model's search after this
    # Training at scale (README "Modelling", benchmarks/train_cost.md): "halving" runs the
    # trials on a stratified sample of 1/factor^k of the rows and keeps the best 1/factor
    # of them for factor x the rows, down to one trial on all rows; "random": every trial on
    # all rows. SMOTE grows the minority class of each training fold to smote_ratio x the
    # majority class (1.0: balanced). XGBoost stops adding trees after early_stopping_rounds
    # without a better ROC-AUC on early_stopping_fraction of each fold's own training rows
    # (held out before SMOTE; 0: no early stopping); the refit takes the folds' mean tree
    # count.
    # A random forest's trees each draw half the rows, but at most forest_max_tree_rows.
    search_strategy: Literal["random", "halving"] = "halving"
    halving_factor: int = Field(3, ge=2, le=10)
    halving_min_rows: int = Field(5_000, ge=100)
    smote_ratio: float = Field(0.5, gt=0, le=1)
    early_stopping_rounds: int = Field(30, ge=0)
    early_stopping_fraction: float = Field(0.1, gt=0, lt=0.5)
    forest_max_tree_rows: int = Field(50_000, ge=1_000)
    models: tuple[str, ...] = DEFAULT_MODELS
    calibration: str = Field("isotonic", pattern="^(isotonic|sigmoid)$")
    pd_floor: float = Field(0.0003, ge=0, lt=0.5)  # no PD below this (the Basel floor, 0.03%)

    # Threshold policy, applied to out-of-fold (validation) PDs: "cost" minimises the expected
    # cost of missed defaults and rejected good applicants; "recall" catches target_recall of
    # the defaults with the highest threshold that does.
    threshold_policy: str = Field("cost", pattern="^(cost|recall)$")
    cost_missed_default: float = Field(5.0, gt=0)
    cost_rejected_good: float = Field(1.0, gt=0)
    target_recall: float = Field(0.8, gt=0, le=1)

    # Credit score scaling: score = offset + factor * ln(odds_good).
    score_base: float = 600.0
    score_base_odds: float = Field(30.0, gt=0)
    score_pdo: float = Field(40.0, gt=0)
    score_min: int = 300
    score_max: int = 900

    # Data validation (Great Expectations): see README "Data validation".
    gx_dir: Path = Path("great_expectations")  # GX context; overrides/<dataset>.yaml tightens
    validation_min_rows: int = Field(100, ge=0)  # per raw table, unless the overrides say
    validation_max_rows: int | None = Field(None, ge=1)
    validation_null_warning: float = Field(0.5, ge=0, le=1)  # warn at this share of the limit
    validation_severity: dict[str, Literal["blocking", "warning"]] = Field(default_factory=dict)
    validation_strict: bool = False  # warnings block too

    # Approval gate (a dataset spec's `gate` section overrides the first three).
    min_roc_auc: float = Field(0.70, ge=0.5, le=1.0)
    max_ece: float = Field(0.05, gt=0, le=1)
    min_approval_ratio: float = Field(0.8, ge=0, le=1)  # lowest/highest group approval rate
    fairness_min_group_size: int = Field(30, ge=1)  # smaller groups are reported, not judged
    champion_margin: float = Field(0.0, ge=-0.1, le=0.1)

    # Monitoring: PSI of each application field, recent traffic vs the champion's training data.
    drift_psi_threshold: float = Field(0.25, gt=0)
    drift_window_days: float = Field(7.0, gt=0)
    drift_min_rows: int = Field(200, ge=1)
    # Performance on matured loans (credit_risk.pipeline.performance): a decision counts once
    # it is this many months old, its outcome a default within that window. A model version or
    # monthly vintage with at least min_loans matured loans and min_defaults defaults alerts
    # when its ROC-AUC is more than max_roc_auc_drop (KS: max_ks_drop) below the training
    # figures, or when mean PD and observed default rate differ by more than
    # max_calibration_gap and by more than calibration_z binomial standard errors.
    performance_months_on_book: int = Field(12, ge=1, le=120)
    performance_min_loans: int = Field(500, ge=1)
    performance_min_defaults: int = Field(30, ge=1)
    performance_max_roc_auc_drop: float = Field(0.05, gt=0, le=1)
    performance_max_ks_drop: float = Field(0.10, gt=0, le=1)
    performance_max_calibration_gap: float = Field(0.02, gt=0, le=1)
    performance_calibration_z: float = Field(3.0, ge=0)
    # How many months of matured vintages the monitoring DAG's performance task reads (the
    # decisions of [as_of - months_on_book - window_months, as_of - months_on_book)).
    performance_window_months: int = Field(12, ge=1, le=120)
    # Observed outcomes (credit-risk outcomes load): a JSONL file, or a PostgreSQL URL
    # (postgresql+psycopg://...; the `outcomes` table of the same migrations as the decisions).
    # Unset: beside the decision log (outcomes.jsonl in its folder; its database for a URL).
    outcomes: Path | str | None = None
    # Where the monitoring DAG's `load_outcomes` task reads new outcomes from (unset: only
    # `credit-risk outcomes load` loads them): a CSV file (application_id, defaulted,
    # observed_at), or a SQL query with the database URL in the variable named by
    # outcomes_sql_url_env. Loading is idempotent, so the task reloads the whole source daily.
    outcomes_csv: Path | None = None
    outcomes_sql: str | None = None
    outcomes_sql_url_env: str | None = None

    @field_validator("outcomes", mode="before")
    @classmethod
    def _outcomes_target(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        if isinstance(value, str) and "://" in value:
            scheme, rest = value.split("://", 1)
            if scheme.lower() in ("postgresql", "postgres", "postgresql+psycopg"):
                return "postgresql+psycopg://" + rest
            raise ValueError(f"outcomes URL scheme {scheme!r}: a file path or "
                             "postgresql+psycopg://... is supported")
        return None if value is None else Path(str(value))

    # Serving.
    reload_interval_s: float = Field(10.0, ge=0)
    max_batch_rows: int = Field(10_000, ge=1)
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # The decision log: a file path (JSON lines, the embedded default) or a PostgreSQL URL
    # (postgresql+psycopg://user@host/db, needs the postgres extra); empty or "none" in the
    # environment: do not log. See README "Security" (the decision log fails closed).
    decision_log: Path | str | None = Path("var/decisions/decisions.jsonl")
    # PostgreSQL only: serving runs `credit-risk decisions migrate` itself at start, and again
    # when the readiness check finds the schema behind (a worker that started before its
    # database). Off: the schema is migrated once per release by a role that may change it.
    decision_log_migrate_on_start: bool = False
    # PostgreSQL only: the group-commit writer of each process. At most `queue_rows` decisions
    # wait (a request beyond that is refused at once, 503), at most `batch_rows` go into one
    # transaction, and a request waits at most `commit_timeout_s` for its commit (then 503;
    # the server cancels a statement after half of it).
    decision_log_queue_rows: int = Field(20_000, ge=1)
    decision_log_batch_rows: int = Field(2_000, ge=1)
    decision_log_commit_timeout_s: float = Field(2.0, gt=0, le=60)
    # Retention: decisions older than this many days are deleted by the monitoring DAG's
    # `prune_decisions` task and `credit-risk decisions prune`; empty/none: keep everything.
    decision_retention_days: float | None = Field(None, gt=0)
    n_reasons: int = Field(3, ge=0, le=10)
    # API keys (comma-separated in CREDIT_RISK_API_KEYS); none: the API is open.
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    # The web form: "open", "api_key" (log in with an API key) or "disabled"; default: "api_key"
    # when API keys are set (the form must not be an open side door to the API), else "open".
    form_auth: Literal["open", "api_key", "disabled"] = "open"
    # The form's security: server-side session lifetime; failed logins allowed per window per
    # client address and in all (the login has no user names, so "per account" is all of them);
    # proxies in front whose X-Forwarded-For/-Proto are trusted (0: none); the session secret
    # (default: derived from the API keys, else random per server start).
    form_session_minutes: float = Field(30.0, gt=0)
    login_failures_per_client: int = Field(5, ge=1)
    login_failures_total: int = Field(50, ge=1)
    login_window_s: float = Field(300.0, gt=0)
    trusted_proxies: int = Field(0, ge=0, le=10)
    secret_key: str | None = Field(None, repr=False)

    @model_validator(mode="after")
    def _form_follows_api_keys(self) -> Settings:
        if self.api_keys and "form_auth" not in self.model_fields_set:
            self.form_auth = "api_key"
        return self

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("trusted_keys", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("dataset", mode="before")
    @classmethod
    def _no_dataset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("signing_key_file", mode="before")
    @classmethod
    def _no_key(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("decision_log", mode="before")
    @classmethod
    def _no_log(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        if isinstance(value, str) and "://" in value:
            scheme = value.split("://", 1)[0].lower()
            if scheme in ("postgresql", "postgres"):  # the driver this project ships
                return "postgresql+psycopg://" + value.split("://", 1)[1]
            if scheme != "postgresql+psycopg":
                raise ValueError(f"decision log URL scheme {scheme!r}: a file path or "
                                 "postgresql+psycopg://... is supported")
            return value
        if value is not None and Path(str(value)).is_dir():
            raise ValueError(f"{value} is a folder: the decision log is a file")
        return None if value is None else Path(str(value))

    @field_validator("decision_retention_days", mode="before")
    @classmethod
    def _keep(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "keep"):
            return None
        return value

    @model_validator(mode="after")
    def _retention_covers_drift_window(self) -> Settings:
        days = self.decision_retention_days
        if days is not None and days < self.drift_window_days:
            raise ValueError(f"decision_retention_days ({days}) is shorter than "
                             f"drift_window_days ({self.drift_window_days}): monitoring "
                             "would lose the traffic it compares")
        matured = 31 * (self.performance_months_on_book + self.performance_window_months)
        monitored = self.outcomes_csv is not None or bool(self.outcomes_sql)
        if days is not None and monitored and days < matured:
            raise ValueError(f"decision_retention_days ({days}) is shorter than the "
                             f"performance window ({self.performance_months_on_book} months on "
                             f"book + {self.performance_window_months} months, {matured} days): "
                             "decisions would be deleted before their loans matured")
        if self.outcomes_sql and not self.outcomes_sql_url_env:
            raise ValueError("outcomes_sql needs outcomes_sql_url_env: the name of the "
                             "environment variable holding the database URL")
        return self

    @property
    def local_runs_dir(self) -> Path:
        """runs_dir as a local folder, for what reads run folders as files (the Airflow UI
        pages); a clear error when it is an object store URL."""
        if isinstance(self.runs_dir, str):
            raise ValueError(f"runs_dir {self.runs_dir} is an object store URL; this needs a "
                             "local runs folder")
        return self.runs_dir
