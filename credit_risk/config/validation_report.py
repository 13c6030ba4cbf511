"""Settings of the validation report a version is published with (traffic lights, costs)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from credit_risk.config.base import Group, env


class ValidationReportSettings(Group):
    title: ClassVar[str] = "Validation report"
    amber_p: float = Field(
        0.05, gt=0, lt=1, alias=env("validation_report_amber_p"),
        description="A calibration test's p-value below this is amber (PD may be too low).")
    red_p: float = Field(
        0.01, gt=0, lt=1, alias=env("validation_report_red_p"),
        description="A calibration test's p-value below this is red.")
    psi_amber: float = Field(
        0.10, gt=0, alias=env("validation_report_psi_amber"),
        description="A grade distribution PSI (test against training) at or above this is "
                    "amber.")
    psi_red: float = Field(
        0.25, gt=0, alias=env("validation_report_psi_red"),
        description="A grade distribution PSI at or above this is red.")
    default_grades: int = Field(
        10, ge=2, le=50, alias=env("validation_report_default_grades"),
        description="Without a master scale, grades are this many PD quantiles of the "
                    "training rows.")
    segment_bins: int = Field(
        4, ge=2, le=20, alias=env("validation_report_segment_bins"),
        description="A numeric segment column is cut into this many quantile bins.")
    importance_rows: int = Field(
        2000, ge=100, alias=env("validation_report_importance_rows"),
        description="Test rows (a seeded sample) the feature importance is computed on.")
    permutation_repeats: int = Field(
        3, ge=1, le=50, alias=env("validation_report_permutation_repeats"),
        description="Shuffles per feature of the permutation importance (random forest and "
                    "other models without their own).")

    @model_validator(mode="after")
    def _ordered(self) -> ValidationReportSettings:
        if self.red_p > self.amber_p:
            raise ValueError("validation_report_red_p must not exceed validation_report_amber_p")
        if self.psi_red < self.psi_amber:
            raise ValueError("validation_report_psi_red must not be below "
                             "validation_report_psi_amber")
        return self
