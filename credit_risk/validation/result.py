"""validation.json: a validation run's result, a typed model validated on write and on read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import model_validator

from credit_risk.report_model import ReportError, ReportModel


class OutcomeRecord(ReportModel):
    """A failed (or not evaluated) expectation as the result records it; `report.Outcome` adds
    its log line."""

    id: str
    batch: str
    column: str | None
    check: str
    type: str
    expected: str
    severity: str
    source: str
    observed: str
    examples: list[Any] = []
    examples_label: str = "e.g."
    unexpected_count: int | None = None
    element_count: int | None = None
    evaluated: bool = True


class BatchStatistics(ReportModel):
    success: bool
    evaluated_expectations: int
    successful_expectations: int
    unsuccessful_expectations: int


class CheckRecord(ReportModel):
    """One expectation of a suite: what it expects, how severe, where it comes from."""

    id: str
    type: str
    expected: str
    severity: str
    source: str


class ValidationResult(ReportModel):
    """A validation run's result: blocking failures, warnings, what was not run, statistics
    per batch, the checks, and where the GX results and Data Docs are."""

    KIND = "validation result"
    dataset: str
    success: bool
    validated_at: str
    # what was validated: a run's snapshot (with its fingerprint and table sizes) or a folder
    snapshot: str | None = None
    data_fingerprint: str | None = None
    tables: dict[str, int] | None = None
    data_dir: str | None = None
    summary: str
    blocking_failures: list[OutcomeRecord]
    warnings: list[OutcomeRecord]
    not_run: dict[str, str]
    statistics: dict[str, BatchStatistics]
    checks: dict[str, list[CheckRecord]]
    gx_results: dict[str, str]
    data_docs: str
    great_expectations_version: str
    seconds: float

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.success == bool(self.blocking_failures):
            raise ValueError("success: contradicts blocking_failures")
        return self

    @classmethod
    def read(cls, path: Path) -> ValidationResult:
        """A local validation.json; ReportError when it is absent or malformed."""
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise ReportError(f"{path}: no such {cls.KIND}") from None
        return cls.loads(text, str(path))
