"""Settings of monitoring, the decision log and the serving app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from credit_risk.config.base import (
    Group,
    _blank_is_none,
    _postgres_or_path,
    _split,
    env,
)


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
    spool: Path | None = Field(
        None, alias=env("decision_log_spool"),
        description="PostgreSQL: a folder on the serving host's volume where serving fsyncs "
                    "each decision before answering; a background shipper moves them to the "
                    "database (so decisions are answered while it is down). Unset: each "
                    "decision is committed to the database before the answer.")
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

    @field_validator("spool", mode="before")
    @classmethod
    def _spool(cls, value: object) -> object:
        return _blank_is_none(value, "none")

    @field_validator("retention_days", mode="before")
    @classmethod
    def _keep(cls, value: object) -> object:
        return _blank_is_none(value, "none", "keep")


class ServingSettings(Group):
    title: ClassVar[str] = "Serving"
    bind: str = Field("0.0.0.0:8000", alias=env("bind"), description="gunicorn's address.")
    workers: int | None = Field(None, ge=1, alias=env("workers"),
                                description="gunicorn workers; unset: one per CPU.")
    threads: int = Field(1, ge=1, alias=env("threads"),
                         description="Threads per worker. 1: sync workers, the fastest with "
                                     "the JSONL file log and with the spool on a local disk; "
                                     "more than 1: gthread workers, whose waiting requests "
                                     "share one PostgreSQL or spool flush (for slow flushes).")
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
