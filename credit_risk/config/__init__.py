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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from credit_risk.config.base import DEFAULT_MODELS, MODELS, PREFIX, Group, env
from credit_risk.config.modelling import (
    DataSettings,
    GateSettings,
    RegistrySettings,
    ScoreSettings,
    SigningSettings,
    TrainingSettings,
    ValidationSettings,
)
from credit_risk.config.operations import DecisionLogSettings, MonitoringSettings, ServingSettings
from credit_risk.config.policy import PolicySettings
from credit_risk.config.rating import PDSettings
from credit_risk.config.scorecard import ScorecardSettings
from credit_risk.config.validation_report import ValidationReportSettings

__all__ = ["DEFAULT_MODELS", "FLAT", "GROUPS", "MODELS", "PREFIX", "DataSettings",
           "DecisionLogSettings", "GateSettings", "Group", "MonitoringSettings", "PDSettings",
           "PolicySettings", "RegistrySettings", "ScoreSettings", "ScorecardSettings",
           "ServingSettings", "Settings", "SigningSettings", "TrainingSettings",
           "ValidationReportSettings",
           "ValidationSettings", "env"]

GROUPS: dict[str, type[Group]] = {
    "data": DataSettings, "registry": RegistrySettings, "signing": SigningSettings,
    "training": TrainingSettings, "pd": PDSettings, "score": ScoreSettings,
    "validation": ValidationSettings, "gate": GateSettings, "policy": PolicySettings,
    "monitoring": MonitoringSettings,
    "decisions": DecisionLogSettings, "serving": ServingSettings,
    "validation_report": ValidationReportSettings,
    "scorecard": ScorecardSettings,
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
    pd: PDSettings = Field(default_factory=PDSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    decisions: DecisionLogSettings = Field(default_factory=DecisionLogSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    validation_report: ValidationReportSettings = Field(default_factory=ValidationReportSettings)
    scorecard: ScorecardSettings = Field(default_factory=ScorecardSettings)

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
