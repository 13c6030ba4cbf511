"""The base of the JSON reports a run writes (comparison, drift, performance, validation).

Each report is a frozen pydantic model, validated when it is written and when it is read: a
wrong key is a type error, and a corrupt or hand-edited file a `ReportError` naming the file
and the field. Fields a report did not set are left out of its file, so that a short report
(no champion, too little traffic) keeps its short shape.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from credit_risk.errors import CreditRiskError


class ReportError(CreditRiskError, ValueError):
    """A report file that is not JSON or not of its report's shape."""


def field_errors(exc: ValidationError, limit: int = 5) -> str:
    """A ValidationError in one line: each bad field (dotted path) and why."""
    shown = [f"{'.'.join(map(str, e['loc'])) or '(the whole file)'}: {e['msg']}"
             for e in exc.errors()[:limit]]
    more = exc.error_count() - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


class ReportModel(BaseModel):
    """A JSON report: `loads` validates what is read, `dumps` what is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    KIND: ClassVar[str] = "report"

    @classmethod
    def loads(cls, text: str | bytes, where: str) -> Self:
        """The report in `text`, read from `where`; ReportError naming the file and field."""
        try:
            raw: Any = json.loads(text)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise ReportError(f"{where}: not a {cls.KIND} (not JSON: {exc})") from None
        return cls.parse(raw, where)

    @classmethod
    def parse(cls, raw: Any, where: str) -> Self:
        """The report from decoded JSON; ReportError naming `where` and the bad fields."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ReportError(f"{where}: not a valid {cls.KIND}: {field_errors(exc)}") from None

    def dumps(self) -> str:
        """The report as its file holds it: indented JSON (see `to_dict`)."""
        return json.dumps(self.to_dict(), indent=2)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON data: its own fields that were not set left out (nested reports
        whole, defaults included)."""
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if k in self.model_fields_set}
