"""Expectation suites derived from a dataset spec, plus hand-tightening from an overrides file.

Pure functions, no Great Expectations import: a suite here is a list of ``Check``s (an
expectation type, its kwargs, a severity and a readable description); ``gx_run`` turns
them into GX expectation suites.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from credit_risk.spec.dataset import Column, DatasetSpec, Role, SpecError
from credit_risk.spec.expressions import parse_expression
from credit_risk.spec.fields import Constraints

Severity = Literal["blocking", "warning"]
FEATURES = "features"
FINITE = 1.7976931348623157e308  # the largest float: "between -FINITE and FINITE" means finite
NUMBER_RE = r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"
NUMERIC_TYPES = ["int", "float", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "float32", "float64", "Int8", "Int16", "Int32", "Int64", "Float32",
                 "Float64"]
INTEGER_TYPES = [t for t in NUMERIC_TYPES if "int" in t.lower()]


@dataclass(frozen=True)
class Check:
    """One expectation on one batch (a raw table, a reference check or the feature table)."""

    batch: str
    name: str  # short check name: unique per batch and column
    type: str  # GX expectation type, e.g. expect_column_values_to_be_between
    kwargs: dict[str, Any]
    text: str  # what is expected, in words
    severity: Severity = "blocking"
    source: str = "spec"  # spec | override | settings

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column") or self.kwargs.get("column_A")

    @property
    def id(self) -> str:
        return f"{self.batch}.{self.column or 'table'}.{self.name}"


@dataclass(frozen=True)
class Reference:
    """Every value of child[key] must be a value of parent[key]."""

    child: str
    parent: str
    key: str

    @property
    def batch(self) -> str:
        return f"references_{self.child}_{self.parent}"

    @property
    def parent_column(self) -> str:
        return f"{self.parent}.{self.key}"


@dataclass
class Suites:
    """All checks of a dataset, grouped by batch in the order they run."""

    dataset: str
    checks: dict[str, list[Check]] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)

    def add(self, check: Check) -> None:
        self.checks.setdefault(check.batch, []).append(check)

    def all(self) -> list[Check]:
        return [c for checks in self.checks.values() for c in checks]


# -- overrides: hand-tightening in great_expectations/overrides/<dataset>.yaml ----------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableOverride(_Strict):
    min_rows: int | None = Field(None, ge=0)
    max_rows: int | None = Field(None, ge=0)


class ColumnOverride(_Strict):
    min: float | None = None
    max: float | None = None
    max_null_rate: float | None = Field(None, ge=0, le=1)
    categories: list[str] | None = None


class Bounds(_Strict):
    min: float | None = None
    max: float | None = None
    severity: Severity = "blocking"


class ExtraExpectation(_Strict):
    batch: str
    type: str
    kwargs: dict[str, Any]
    name: str | None = None
    text: str | None = None
    severity: Severity = "blocking"


class Overrides(_Strict):
    tables: dict[str, TableOverride] = Field(default_factory=dict)
    columns: dict[str, ColumnOverride] = Field(default_factory=dict)
    features: dict[str, Bounds] = Field(default_factory=dict)
    expectations: list[ExtraExpectation] = Field(default_factory=list)
    severity: dict[str, Severity] = Field(default_factory=dict)  # check-id pattern -> severity


def load_overrides(gx_dir: Path | None, dataset: str) -> Overrides:
    """The dataset's overrides file under <gx_dir>/overrides/, or no overrides."""
    if gx_dir is None:
        return Overrides()
    path = gx_dir / "overrides" / f"{dataset}.yaml"
    if not path.is_file():
        return Overrides()
    try:
        return Overrides.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"{path}: invalid validation overrides:\n{exc}") from exc


# -- building -----------------------------------------------------------------------------
def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"values between {_num(lo)} and {_num(hi)}"
    return f"values >= {_num(lo)}" if lo is not None else f"values <= {_num(hi)}"  # type: ignore[arg-type]


def table_columns(spec: DatasetSpec) -> dict[str, list[str]]:
    """The columns each raw table must carry: its own columns and the join keys."""
    out: dict[str, list[str]] = {name: [] for name in spec.tables}
    for name, col in spec.columns.items():
        out[col.table or spec.base].append(name)
    for join in spec.joins:
        for table in (spec.base, join.table):
            if join.key not in out[table]:
                out[table].insert(0, join.key)
    for tname, t in spec.tables.items():
        if t.key and t.key not in out[tname]:
            out[tname].insert(0, t.key)
    return out


def references(spec: DatasetSpec) -> list[Reference]:
    """Join keys must point at an existing row of the table that owns the key."""
    refs: list[Reference] = []
    for join in spec.joins:
        owner = spec.columns[join.key].table if join.key in spec.columns else None
        owner = owner or join.table
        for child in (spec.base, join.table):
            ref = Reference(child, owner, join.key)
            if child != owner and ref not in refs:
                refs.append(ref)
    return refs


def _column_checks(table: str, name: str, col: Column, settings_null_warning: float,
                   key: bool) -> list[Check]:
    ignored = col.role == Role.IGNORED
    sev: Severity = "warning" if ignored else "blocking"
    checks = [Check(table, "exists", "expect_column_to_exist", {"column": name},
                    "column present", sev)]
    c = Constraints.of_column(col)  # what the column accepts: the same as the API's field
    if c is not None and c.numeric:
        checks += [
            Check(table, "type", "expect_column_values_to_be_in_type_list",
                  {"column": name, "type_list": NUMERIC_TYPES}, "a numeric type", sev),
            Check(table, "numbers", "expect_column_values_to_match_regex",
                  {"column": name, "regex": NUMBER_RE}, "finite numbers, not text", sev),
        ]
        if c.integer:
            checks.append(Check(table, "integer", "expect_column_values_to_be_in_type_list",
                                {"column": name, "type_list": INTEGER_TYPES},
                                "an integer type", "warning"))
        if c.min is not None or c.max is not None:
            checks.append(Check(table, "range", "expect_column_values_to_be_between",
                                {"column": name, "min_value": c.min, "max_value": c.max},
                                _range_text(c.min, c.max), sev))
    if c is not None and c.categories:
        # raw data also carries what cleaning maps onto a category or reads as missing
        allowed = list(dict.fromkeys([*c.categories, *col.replace,
                                      *(str(v) for v in col.missing_values)]))
        # a numeric code is also read as a number (a column of 0/1/2, or 1.0 beside blanks)
        codes = [int(v) for v in allowed if re.fullmatch(r"[+-]?\d{1,18}", v)]
        checks.append(Check(table, "categories", "expect_column_values_to_be_in_set",
                            {"column": name, "value_set": [*allowed, *codes]},
                            "values in {" + ", ".join(allowed) + "}", sev))
    if ignored:
        return checks
    rate = col.max_null_rate
    checks.append(Check(table, "nulls", "expect_column_values_to_not_be_null",
                        {"column": name, "mostly": round(1 - rate, 10)},
                        "no nulls" if rate == 0 else f"at most {rate:.2%} nulls"))
    warn = rate * settings_null_warning
    if 0 < warn < rate:
        checks.append(Check(table, "nulls_warning", "expect_column_values_to_not_be_null",
                            {"column": name, "mostly": round(1 - warn, 10)},
                            f"at most {warn:.2%} nulls (warning level)", "warning"))
    if col.missing_values and col.role == Role.NUMERIC:
        values = list(col.missing_values)
        shown = ", ".join(map(str, values))
        checks.append(Check(table, "missing_values", "expect_column_values_to_not_be_in_set",
                            {"column": name, "value_set": values, "mostly": round(1 - rate, 10)},
                            f"at most {rate:.2%} values in {{{shown}}} (read as missing)"))
    if key:
        checks.append(Check(table, "unique", "expect_column_values_to_be_unique",
                            {"column": name}, "unique (the table's key)"))
    return checks


def _target_checks(spec: DatasetSpec, table: str) -> list[Check]:
    name, positive = spec.target.column, spec.target.positive
    return [
        Check(table, "classes", "expect_column_unique_value_count_to_be_between",
              {"column": name, "min_value": 2, "max_value": 2},
              "exactly two classes (default and no default)"),
        Check(table, "positive_class", "expect_column_distinct_values_to_contain_set",
              {"column": name, "value_set": [positive]},
              f"the default class {positive!r} is present"),
    ]


def derived_range(spec: DatasetSpec, expr: str) -> tuple[float | None, float | None]:
    """The range of a derived feature from the spec's column bounds (after cleaning)."""
    inf = math.inf
    ranges = {name: (-inf if c.min is None else c.min, inf if c.max is None else c.max,
                     c.integer) for name, c in spec.columns.items()}
    return parse_expression(expr).bounds(ranges)


def _feature_checks(spec: DatasetSpec, overrides: Overrides) -> list[Check]:
    """The model's numeric inputs after cleaning: no NaN, no infinity, derived ratios in range."""
    b = FEATURES
    checks = [Check(b, "rows", "expect_table_row_count_to_equal",
                    {"value": {"$PARAMETER": "base_rows"}},
                    f"one row per {spec.base} row (the joins add no rows)")]
    for name in [*spec.numeric_features(), *spec.derived]:
        checks += [Check(b, "nan", "expect_column_values_to_not_be_null", {"column": name},
                         "no NaN"),
                   Check(b, "finite", "expect_column_values_to_be_between",
                         {"column": name, "min_value": -FINITE, "max_value": FINITE},
                         "no infinity")]
    for name, d in spec.derived.items():
        lo, hi = derived_range(spec, d.expr)
        bounds = overrides.features.get(name)
        sev: Severity = "blocking"
        source = "spec"
        if bounds:
            lo = bounds.min if bounds.min is not None else lo
            hi = bounds.max if bounds.max is not None else hi
            sev, source = bounds.severity, "override"
        if lo is not None or hi is not None:
            checks.append(Check(b, "range", "expect_column_values_to_be_between",
                                {"column": name, "min_value": lo, "max_value": hi},
                                f"{_range_text(lo, hi)} ({d.expr})", sev, source))
    return checks


def _apply_column_overrides(spec: DatasetSpec, overrides: Overrides) -> DatasetSpec:
    unknown = set(overrides.columns) - set(spec.columns)
    if unknown:
        raise SpecError(f"validation overrides name unknown columns: {sorted(unknown)}")
    columns = dict(spec.columns)
    for name, o in overrides.columns.items():
        columns[name] = columns[name].model_copy(update=o.model_dump(exclude_none=True))
    return spec.model_copy(update={"columns": columns})


def build_suites(spec: DatasetSpec, overrides: Overrides | None = None, *,
                 min_rows: int = 1, max_rows: int | None = None, null_warning: float = 0.5,
                 severity: dict[str, Severity] | None = None, strict: bool = False) -> Suites:
    """All checks of a dataset: raw tables, references between them, the feature table."""
    overrides = overrides or Overrides()
    unknown = set(overrides.tables) - set(spec.tables)
    unknown |= set(overrides.features) - set(spec.derived)
    if unknown:
        raise SpecError(f"validation overrides name unknown tables or features: {sorted(unknown)}")
    original = spec
    spec = _apply_column_overrides(spec, overrides)
    suites = Suites(spec.name, references=references(spec))
    for table, names in table_columns(spec).items():
        t = overrides.tables.get(table, TableOverride())
        lo = min_rows if t.min_rows is None else t.min_rows
        hi = max_rows if t.max_rows is None else t.max_rows
        rows_text = f"at least {lo:,} rows" if hi is None else f"{lo:,} to {hi:,} rows"
        suites.add(Check(table, "rows", "expect_table_row_count_to_be_between",
                         {"min_value": lo, "max_value": hi}, rows_text,
                         source="override" if table in overrides.tables else "spec"))
        suites.add(Check(table, "columns", "expect_table_columns_to_match_set",
                         {"column_set": names, "exact_match": True},
                         "the columns of the spec, no others", "warning"))
        for name in names:
            col = spec.columns.get(name) or Column(role=Role.ID)
            key = spec.tables[table].key == name
            for check in _column_checks(table, name, col, null_warning, key):
                changed = name in overrides.columns and col != original.columns.get(name)
                suites.add(_with(check, source="override") if changed else check)
            if name == spec.target.column:
                for check in _target_checks(spec, table):
                    suites.add(check)
    for ref in suites.references:
        suites.add(Check(ref.batch, "references", "expect_column_pair_values_to_be_equal",
                         {"column_A": ref.key, "column_B": ref.parent_column},
                         f"every {ref.child}.{ref.key} is a {ref.parent}.{ref.key}"))
    for check in _feature_checks(spec, overrides):
        suites.add(check)
    for e in overrides.expectations:
        if e.batch not in suites.checks:
            raise SpecError(f"validation overrides: unknown batch {e.batch!r} (one of "
                            f"{', '.join(suites.checks)})")
        suites.add(Check(e.batch, e.name or e.type.removeprefix("expect_"), e.type, e.kwargs,
                         e.text or e.type.removeprefix("expect_").replace("_", " "),
                         e.severity, "override"))
    _set_severities(suites, overrides.severity, "override")
    _set_severities(suites, severity or {}, "settings")
    if strict:
        for batch, checks in suites.checks.items():
            suites.checks[batch] = [_with(c, severity="blocking") for c in checks]
    return suites


def _with(check: Check, **changes: Any) -> Check:
    return Check(**{**check.__dict__, **changes})


def _set_severities(suites: Suites, patterns: dict[str, Severity], source: str) -> None:
    for batch, checks in suites.checks.items():
        out = []
        for c in checks:
            for pattern, sev in patterns.items():
                if fnmatch.fnmatchcase(c.id, pattern) and c.severity != sev:
                    c = _with(c, severity=sev, source=source)
            out.append(c)
        suites.checks[batch] = out
