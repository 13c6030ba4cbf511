"""One typed settings object, read from the environment, grouped by concern.

Every setting has a flat name, its environment variable without the ``CREDIT_RISK_`` prefix
(``CREDIT_RISK_REGISTRY_URL`` is ``registry_url``), and a place in a group
(``settings.registry.url``). ``Settings(registry_url=...)`` and ``settings.replace(...)`` take
flat names, as the environment does; code reads the groups. Nothing is read at import time.
The configuration reference in the docs is generated from these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PREFIX = "CREDIT_RISK_"
DEFAULT_MODELS = ("logistic_regression", "random_forest", "xgboost")


def env(flat: str) -> str:
    """The environment variable of a setting's flat name."""
    return PREFIX + flat.upper()


def _path_or_url(value: object) -> object:
    """A local folder as a Path; an fsspec URL (s3://bucket/runs) kept as a string (a Path would
    fold its "//")."""
    if isinstance(value, str):
        return value.rstrip("/") if "://" in value else Path(value)
    return value


def _blank_is_none(value: object, *blanks: str) -> object:
    if isinstance(value, str) and value.strip().lower() in ("", *blanks):
        return None
    return value


def _split(value: object) -> object:
    """A comma-separated environment value as a tuple."""
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return value


def _postgres_or_path(value: object, what: str) -> object:
    """A PostgreSQL URL normalised to the psycopg driver; anything else a file path."""
    if isinstance(value, str) and "://" in value:
        scheme, rest = value.split("://", 1)
        if scheme.lower() in ("postgresql", "postgres", "postgresql+psycopg"):
            return "postgresql+psycopg://" + rest
        raise ValueError(f"{what} URL scheme {scheme!r}: a file path or "
                         "postgresql+psycopg://... is supported")
    return None if value is None else Path(str(value))


class Group(BaseSettings):
    """A group of settings; each field reads the environment variable named by its alias."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="forbid", frozen=False)
    title: ClassVar[str] = ""


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
    calibration: str = Field("isotonic", pattern="^(isotonic|sigmoid)$",
                             alias=env("calibration"),
                             description="Calibration of the PDs on out-of-fold predictions.")
    pd_floor: float = Field(0.0003, ge=0, lt=0.5, alias=env("pd_floor"),
                            description="No PD below this (0.03%, the Basel floor).")
    threshold_policy: str = Field(
        "cost", pattern="^(cost|recall)$", alias=env("threshold_policy"),
        description="cost: minimise the expected cost of missed defaults and rejected good "
                    "applicants; recall: catch target_recall of the defaults.")
    cost_missed_default: float = Field(5.0, gt=0, alias=env("cost_missed_default"),
                                       description="Cost of approving a defaulter.")
    cost_rejected_good: float = Field(1.0, gt=0, alias=env("cost_rejected_good"),
                                      description="Cost of rejecting a good applicant.")
    target_recall: float = Field(0.8, gt=0, le=1, alias=env("target_recall"),
                                 description="Share of defaults the recall policy catches.")


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


class MonitoringSettings(Group):
    title: ClassVar[str] = "Monitoring"
    drift_psi_threshold: float = Field(0.25, gt=0, alias=env("drift_psi_threshold"),
                                       description="PSI over which a field has drifted.")
    drift_window_days: float = Field(7.0, gt=0, alias=env("drift_window_days"),
                                     description="Days of recent traffic compared.")
    drift_min_rows: int = Field(200, ge=1, alias=env("drift_min_rows"),
                                description="Decisions needed for a drift report.")
    performance_months_on_book: int = Field(
        12, ge=1, le=120, alias=env("performance_months_on_book"),
        description="A decision counts once this old; its outcome: default within it.")
    performance_min_loans: int = Field(500, ge=1, alias=env("performance_min_loans"),
                                       description="Matured loans needed to judge.")
    performance_min_defaults: int = Field(30, ge=1, alias=env("performance_min_defaults"),
                                          description="Defaults needed to judge.")
    performance_max_roc_auc_drop: float = Field(
        0.05, gt=0, le=1, alias=env("performance_max_roc_auc_drop"),
        description="Alert when ROC-AUC falls more than this below training.")
    performance_max_ks_drop: float = Field(
        0.10, gt=0, le=1, alias=env("performance_max_ks_drop"),
        description="Alert when KS falls more than this below training.")
    performance_max_calibration_gap: float = Field(
        0.02, gt=0, le=1, alias=env("performance_max_calibration_gap"),
        description="Alert when mean PD and default rate differ by more than this...")
    performance_calibration_z: float = Field(
        3.0, ge=0, alias=env("performance_calibration_z"),
        description="...and by more than this many binomial standard errors.")
    performance_window_months: int = Field(
        12, ge=1, le=120, alias=env("performance_window_months"),
        description="Months of matured vintages the performance task reads.")
    outcomes: Path | str | None = Field(
        None, alias=env("outcomes"),
        description="Observed outcomes: a JSONL file or a PostgreSQL URL; unset: beside the "
                    "decision log.")
    outcomes_csv: Path | None = Field(
        None, alias=env("outcomes_csv"),
        description="CSV (application_id, defaulted, observed_at) the monitoring DAG loads.")
    outcomes_sql: str | None = Field(None, alias=env("outcomes_sql"),
                                     description="SQL query the monitoring DAG loads from.")
    outcomes_sql_url_env: str | None = Field(
        None, alias=env("outcomes_sql_url_env"),
        description="Name of the variable holding outcomes_sql's database URL.")

    @field_validator("outcomes", mode="before")
    @classmethod
    def _outcomes_target(cls, value: object) -> object:
        return _postgres_or_path(_blank_is_none(value, "none"), "outcomes")

    @model_validator(mode="after")
    def _sql_needs_url(self) -> MonitoringSettings:
        if self.outcomes_sql and not self.outcomes_sql_url_env:
            raise ValueError("outcomes_sql needs outcomes_sql_url_env: the name of the "
                             "environment variable holding the database URL")
        return self


class DecisionLogSettings(Group):
    title: ClassVar[str] = "Decision log"
    url: Path | str | None = Field(
        Path("var/decisions/decisions.jsonl"), alias=env("decision_log"),
        description="A JSON-lines file (default) or postgresql+psycopg://...; none: no log.")
    migrate_on_start: bool = Field(
        False, alias=env("decision_log_migrate_on_start"),
        description="PostgreSQL: serving migrates the schema at start, and again when the "
                    "readiness check finds it behind; off: migrated once per release.")
    queue_rows: int = Field(20_000, ge=1, alias=env("decision_log_queue_rows"),
                            description="PostgreSQL: decisions waiting at most (then 503).")
    batch_rows: int = Field(2_000, ge=1, alias=env("decision_log_batch_rows"),
                            description="PostgreSQL: decisions per transaction at most.")
    commit_timeout_s: float = Field(2.0, gt=0, le=60, alias=env("decision_log_commit_timeout_s"),
                                    description="PostgreSQL: a request waits this long for its "
                                                "commit (then 503; the server cancels a "
                                                "statement after half of it).")
    predict_log: bool = Field(
        False, alias=env("predict_log"),
        description="`credit-risk predict` records its decisions in the decision log (as "
                    "`--log` does); off: a batch run leaves no trace beyond its output. The API "
                    "and the form always record theirs.")
    retention_days: float | None = Field(
        None, gt=0, alias=env("decision_retention_days"),
        description="Decisions older than this are pruned; unset: keep everything.")

    @field_validator("url", mode="before")
    @classmethod
    def _target(cls, value: object) -> object:
        value = _postgres_or_path(_blank_is_none(value, "none"), "decision log")
        if isinstance(value, Path) and value.is_dir():
            raise ValueError(f"{value} is a folder: the decision log is a file")
        return value

    @field_validator("retention_days", mode="before")
    @classmethod
    def _keep(cls, value: object) -> object:
        return _blank_is_none(value, "none", "keep")


class ServingSettings(Group):
    title: ClassVar[str] = "Serving"
    bind: str = Field("0.0.0.0:8000", alias=env("bind"), description="gunicorn's address.")
    workers: int | None = Field(None, ge=1, alias=env("workers"),
                                description="gunicorn workers; unset: one per CPU.")
    threads: int = Field(1, ge=1, alias=env("threads"), description="Threads per worker.")
    timeout_s: int = Field(30, ge=1, alias=env("timeout_s"),
                           description="A worker stuck this long is restarted.")
    access_log: str | None = Field(None, alias=env("access_log"),
                                   description="gunicorn access log ('-': stdout); unset: off.")
    log_level: str = Field("info", alias=env("log_level"), description="gunicorn log level.")
    reload_interval_s: float = Field(10.0, ge=0, alias=env("reload_interval_s"),
                                     description="How often the champion alias is checked.")
    max_batch_rows: int = Field(10_000, ge=1, alias=env("max_batch_rows"),
                                description="Applications per batch request at most.")
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024, alias=env("max_request_bytes"),
                                   description="Request body size at most.")
    n_reasons: int = Field(3, ge=0, le=10, alias=env("n_reasons"),
                           description="Reasons returned with each decision.")
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (), alias=env("api_keys"), repr=False,
        description="API keys (comma-separated); none: the API is open.")
    form_auth: Literal["open", "api_key", "disabled"] = Field(
        "open", alias=env("form_auth"),
        description="The web form: open, api_key (log in with a key) or disabled; "
                    "api_key by default when API keys are set.")
    form_session_minutes: float = Field(30.0, gt=0, alias=env("form_session_minutes"),
                                        description="Form session lifetime.")
    login_failures_per_client: int = Field(5, ge=1, alias=env("login_failures_per_client"),
                                           description="Failed logins per client per window.")
    login_failures_total: int = Field(50, ge=1, alias=env("login_failures_total"),
                                      description="Failed logins in all per window.")
    login_window_s: float = Field(300.0, gt=0, alias=env("login_window_s"),
                                  description="The failed-login window.")
    trusted_proxies: int = Field(0, ge=0, le=10, alias=env("trusted_proxies"),
                                 description="Proxies whose X-Forwarded-* are trusted.")
    secret_key: str | None = Field(None, repr=False, alias=env("secret_key"),
                                   description="Form session secret; default: derived from "
                                               "the API keys, else random per start.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        return _split(value)

    @field_validator("workers", "access_log", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        return _blank_is_none(value)

    @model_validator(mode="after")
    def _form_follows_api_keys(self) -> ServingSettings:
        if self.api_keys and "form_auth" not in self.model_fields_set:
            self.form_auth = "api_key"
        return self


GROUPS: dict[str, type[Group]] = {
    "data": DataSettings, "registry": RegistrySettings, "signing": SigningSettings,
    "training": TrainingSettings, "score": ScoreSettings, "validation": ValidationSettings,
    "gate": GateSettings, "monitoring": MonitoringSettings,
    "decisions": DecisionLogSettings, "serving": ServingSettings,
}


def _flat_names() -> dict[str, tuple[str, str]]:
    """{flat name: (group, field)} of every setting."""
    out = {}
    for group, cls in GROUPS.items():
        for name, field in cls.model_fields.items():
            assert isinstance(field.alias, str)
            out[field.alias[len(PREFIX):].lower()] = (group, name)
    return out


FLAT: dict[str, tuple[str, str]] = _flat_names()


class Settings(BaseModel):
    """Everything a run or the serving app needs, by group; nothing is read at import time."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    data: DataSettings = Field(default_factory=DataSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    decisions: DecisionLogSettings = Field(default_factory=DecisionLogSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        """Flat names (as in the environment) go to their groups; the environment fills the
        rest of a group."""
        if not isinstance(data, dict):
            return data
        unknown = sorted(k for k in data if k not in FLAT and k not in GROUPS)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {k: v for k, v in data.items() if k in GROUPS}
        by_group: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            if key in FLAT:  # by the variable's name, so that an error names the variable
                by_group.setdefault(FLAT[key][0], {})[env(key)] = value
        for group, fields in by_group.items():
            base = values.get(group)
            if isinstance(base, Group):
                base = base.model_dump(by_alias=True)
            elif isinstance(base, dict):
                model = GROUPS[group].model_fields
                base = {model[k].alias if k in model else k: v for k, v in base.items()}
            values[group] = GROUPS[group](**{**(base or {}), **fields})
        return values

    @model_validator(mode="after")
    def _retention_covers_monitoring(self) -> Settings:
        days = self.decisions.retention_days
        mon = self.monitoring
        if days is not None and days < mon.drift_window_days:
            raise ValueError(f"decision_retention_days ({days}) is shorter than "
                             f"drift_window_days ({mon.drift_window_days}): monitoring "
                             "would lose the traffic it compares")
        matured = 31 * (mon.performance_months_on_book + mon.performance_window_months)
        monitored = mon.outcomes_csv is not None or bool(mon.outcomes_sql)
        if days is not None and monitored and days < matured:
            raise ValueError(f"decision_retention_days ({days}) is shorter than the "
                             f"performance window ({mon.performance_months_on_book} months on "
                             f"book + {mon.performance_window_months} months, {matured} days): "
                             "decisions would be deleted before their loans matured")
        return self

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name."""
        return {key: getattr(getattr(self, group), name) for key, (group, name) in FLAT.items()}

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with some settings changed, by flat name (or a whole group)."""
        groups = {k for k in changes if k in GROUPS}
        current = {key: value for key, value in self.flat().items()
                   if FLAT[key][0] not in groups}
        return Settings(**{**current, **changes})

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Settings:
        """A copy; ``update`` takes flat names (or groups) and is validated, as ``replace``."""
        if update:
            return self.replace(**update)
        return super().model_copy(deep=deep)

    @property
    def local_runs_dir(self) -> Path:
        """runs_dir as a local folder; a clear error when it is an object store URL."""
        runs = self.data.runs_dir
        if isinstance(runs, str):
            raise ValueError(f"runs_dir {runs} is an object store URL; this needs a local "
                             "runs folder")
        return runs
