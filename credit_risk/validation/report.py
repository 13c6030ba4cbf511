"""Turn GX validation results into a readable report: what failed, where, with examples."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_risk.errors import CreditRiskError
from credit_risk.validation.result import OutcomeRecord

MAX_EXAMPLES = 5


class DataValidationError(CreditRiskError, ValueError):
    """Blocking data expectations failed: the run stops before training."""


class Outcome(OutcomeRecord):
    """One failed (or not evaluated) expectation, ready for the log and the JSON result."""

    def line(self) -> str:
        where = f"{self.batch}.{self.column}" if self.column else self.batch
        text = f"{where}: expected {self.expected}; {self.observed}"
        if self.examples:
            text += f", {self.examples_label} " + ", ".join(_show(v) for v in self.examples)
        return f"{text}  [{self.id}]"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _pct(share: float) -> str:
    return "<0.01%" if 0 < share < 0.0001 else f"{share:.2%}"


def _clean(value: Any) -> Any:
    """A plain example value (pairs reduced to the value checked)."""
    if isinstance(value, list | tuple):
        return _clean(value[0]) if value else None
    if hasattr(value, "item"):
        return _clean(value.item())
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _exception(result: Any) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _observed(cfg: Any, r: dict[str, Any]) -> tuple[str, list[Any], int | None, int | None]:
    if cfg.type == "expect_column_to_exist":
        return "the column is missing", [], None, None
    if r.get("partial_missing_list"):
        missing = ", ".join(_show(_clean(v)) for v in r["partial_missing_list"])
        return f"not found: {missing}", [], None, None
    if "unexpected_count" in r:
        n, total = int(r["unexpected_count"]), int(r.get("element_count") or 0)
        share = f" ({_pct(n / total)})" if total else ""
        if cfg.type == "expect_column_values_to_not_be_null":
            rows = r.get("partial_unexpected_index_list") or []
            return (f"{n:,} of {total:,} values are null{share}",
                    [_clean(i) for i in rows[:MAX_EXAMPLES]], n, total)
        counts = r.get("partial_unexpected_counts") or []
        values = [c["value"] for c in counts] or list(r.get("partial_unexpected_list") or [])
        examples = [_clean(v) for v in values[:MAX_EXAMPLES]]
        return f"{n:,} of {total:,} values fail{share}", examples, n, total
    details = (r.get("details") or {}).get("mismatched")
    if details:
        parts = [f"{k} columns {sorted(v)}" for k, v in details.items() if v]
        return "; ".join(parts), [], None, None
    if "observed_value" in r:
        return f"observed {_show(_clean(r['observed_value']))}", [], None, None
    return "failed", [], None, None


def outcomes(batch: str, result: Any) -> list[Outcome]:
    """The failed expectations of one batch's GX result."""
    out = []
    for er in result.results:
        if er.success:
            continue
        cfg = er.expectation_config
        meta = cfg.meta or {}
        column = cfg.kwargs.get("column") or cfg.kwargs.get("column_A")
        error = _exception(er)
        examples: list[Any]
        if error:
            observed, examples, n, total = f"could not be evaluated: {error}", [], None, None
        else:
            observed, examples, n, total = _observed(cfg, er.result or {})
        out.append(Outcome(
            id=meta.get("check_id", f"{batch}.{column or 'table'}.{cfg.type}"), batch=batch,
            column=column, check=meta.get("check", cfg.type), type=cfg.type,
            expected=meta.get("expected", cfg.type), severity=meta.get("severity", "blocking"),
            source=meta.get("source", "suite"), observed=observed, examples=examples,
            unexpected_count=n, element_count=total, evaluated=error is None,
            examples_label="in rows" if cfg.type.endswith("to_not_be_null") else "e.g."))
    return out


@dataclass
class Report:
    dataset: str
    failures: list[Outcome]
    warnings: list[Outcome]
    skipped: dict[str, str]
    statistics: dict[str, dict[str, Any]]
    path: Path | str  # a URL string when the run folder is on an object store
    docs: Path | str | None

    @property
    def success(self) -> bool:
        return not self.failures

    def _lines(self, items: list[Outcome]) -> list[str]:
        """Items, hiding checks that could not run on a column that already failed."""
        failed_columns = {(o.batch, o.column) for o in self.failures if o.evaluated}
        shown = [o for o in items if o.evaluated or (o.batch, o.column) not in failed_columns]
        lines = [f"  - {o.line()}" for o in shown]
        hidden = len(items) - len(shown)
        if hidden:
            lines.append(f"  ({hidden} more check{'s' if hidden > 1 else ''} on those columns "
                         "could not be evaluated)")
        return lines

    def message(self) -> str:
        n = len(self.failures)
        head = (f"data validation failed for dataset {self.dataset!r}: {n} blocking "
                f"expectation{'s' if n != 1 else ''} failed" if n else
                f"data validation passed for dataset {self.dataset!r}")
        lines = [head, *self._lines(self.failures)]
        if self.warnings:
            lines += [f"warnings (recorded, not blocking): {len(self.warnings)}",
                      *self._lines(self.warnings)]
        lines += [f"not run: {batch} ({why})" for batch, why in self.skipped.items()]
        lines.append(f"validation result: {self.path}")
        if self.docs:
            lines.append(f"data docs: {self.docs}")
        return "\n".join(lines)

    def summary(self) -> str:
        checks = sum(s["evaluated_expectations"] for s in self.statistics.values())
        return (f"{'PASSED' if self.success else 'FAILED'}: {checks} expectations on "
                f"{len(self.statistics)} batches, {len(self.failures)} blocking failures, "
                f"{len(self.warnings)} warnings")

    def raise_for_failures(self) -> None:
        if self.failures:
            raise DataValidationError(self.message())


def json_safe(value: Any) -> Any:
    """Strict JSON: non-finite floats become strings ("inf", "nan")."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def summary_html(report: Report, pages: dict[str, tuple[str | None, str | None]]) -> str:
    """A plain HTML summary (no scripts, readable offline) linking each batch's GX pages."""
    e = html.escape

    def rows(items: list[Outcome]) -> str:
        return "".join(
            f"<tr><td><code>{e(o.id)}</code></td><td>{e(o.expected)}</td>"
            f"<td>{e(o.observed)}</td><td>{e(', '.join(_show(v) for v in o.examples))}</td></tr>"
            for o in items) or '<tr><td colspan="4">none</td></tr>'

    head = "<tr><th>Check</th><th>Expected</th><th>Observed</th><th>Examples</th></tr>"
    failed = {o.batch for o in report.failures}
    warned = {o.batch for o in report.warnings}

    def batch_status(batch: str) -> str:
        return "FAILED" if batch in failed else "warnings" if batch in warned else "passed"

    batches = "".join(
        f"<tr><td>{e(b)}</td><td>{batch_status(b)}</td>"
        f"<td>{s['successful_expectations']} of {s['evaluated_expectations']}</td>"
        f"<td>{_link(pages.get(b, (None, None))[0], 'result')} "
        f"{_link(pages.get(b, (None, None))[1], 'suite')}</td></tr>"
        for b, s in report.statistics.items())
    skipped = "".join(f"<li>{e(b)}: {e(why)}</li>" for b, why in report.skipped.items())
    status = "PASSED" if report.success else "FAILED"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Data validation: {e(report.dataset)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}</style>
</head><body>
<h1>Data validation of {e(report.dataset)}: {status}</h1>
<p>{e(report.summary())}. <a href="index.html">Great Expectations Data Docs</a></p>
<h2>Blocking failures</h2><table>{head}{rows(report.failures)}</table>
<h2>Warnings (recorded, not blocking)</h2><table>{head}{rows(report.warnings)}</table>
<h2>Batches</h2><table><tr><th>Batch</th><th>Status</th><th>Expectations met</th>
<th>Pages</th></tr>{batches}</table>
{f"<h2>Not run</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""


def _link(href: str | None, text: str) -> str:
    return f'<a href="{html.escape(href)}">{text}</a>' if href else ""
