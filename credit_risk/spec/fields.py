"""An application's fields: what each accepts, defined once, and validation of inputs.

`Constraints` is the one definition of what a field accepts (type, bounds, whole numbers,
categories, null). The validator here (one application, or a batch column by column), the
API's pydantic/OpenAPI schema (`credit_risk.scoring.request`) and the raw-table GX suites
(`credit_risk.validation.suites`) all derive from it. A published model's input fields (its
manifest's ``inputs``) carry the same keys, so a version stays self-describing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import BeforeValidator, Field

from credit_risk.spec.dataset import Column, DatasetSpec, Role
from credit_risk.spec.expressions import parse_expression

Kind = Literal["number", "integer", "category"]
_NUMBER_TYPES = frozenset({int, float})


@dataclass(frozen=True, slots=True)
class Constraints:
    """What one field accepts."""

    type: Kind
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()

    @classmethod
    def of_column(cls, col: Column, categories: Sequence[str] | None = None
                  ) -> Constraints | None:
        """A spec column's constraints (None for ids, dates, the target and ignored columns
        without bounds). `categories`: the fitted ones of a model, else the spec's."""
        nullable = col.max_null_rate > 0
        if col.role == Role.CATEGORICAL:
            cats = categories if categories is not None else col.categories or ()
            return cls("category", nullable, categories=tuple(cats))
        if col.role == Role.NUMERIC or (
                col.role == Role.IGNORED and (col.min is not None or col.max is not None)):
            return cls("integer" if col.integer else "number", nullable, col.min, col.max)
        return None

    @classmethod
    def of_field(cls, field: Mapping[str, Any]) -> Constraints:
        """The constraints of an input field (an entry of a manifest's ``inputs``)."""
        if field["type"] == "category":
            return cls("category", field["nullable"], categories=tuple(field["categories"]))
        return cls(field["type"], field["nullable"], field.get("min"), field.get("max"))

    def as_field(self) -> dict[str, Any]:
        """The keys an input field carries for these constraints."""
        if self.type == "category":
            return {"type": "category", "categories": list(self.categories),
                    "nullable": self.nullable}
        return {"type": self.type, "min": self.min, "max": self.max, "nullable": self.nullable}

    @property
    def integer(self) -> bool:
        return self.type == "integer"

    @property
    def numeric(self) -> bool:
        return self.type != "category"

    # -- checking values ----------------------------------------------------------------
    def error(self, value: Any) -> str | None:
        """Why one value is refused, or None."""
        if value is None:
            return None if self.nullable else "must not be null"
        if self.type == "category":
            if not isinstance(value, str):
                return "must be a string"
            if value not in self.categories:
                return f"must be one of: {', '.join(self.categories)}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            finite = False
        if not finite:
            return "must be a finite number"
        if self.integer and value != int(value):
            return "must be a whole number"
        if self.min is not None and value < self.min:
            return f"must be at least {self.min:g}"
        if self.max is not None and value > self.max:
            return f"must be at most {self.max:g}"
        return None

    def all_valid(self, column: Sequence[Any]) -> bool:
        """Whether every value passes `error` (True means so; False means: ask `error`).
        The fast path of a batch, with NumPy over the whole column."""
        types = set(map(type, column))
        if type(None) in types:
            if not self.nullable:
                return False
            types.discard(type(None))
            column = [v for v in column if v is not None]
        if self.type == "category":
            return types <= {str} and set(column) <= set(self.categories)
        if not types <= _NUMBER_TYPES:
            return False
        try:
            x = np.array(column, dtype=float)
        except (OverflowError, ValueError, TypeError):
            return False
        if not np.isfinite(x).all():
            return False
        if self.integer and float in types and not (x == np.floor(x)).all():
            return False
        return (self.min is None or bool((x >= self.min).all())) and \
            (self.max is None or bool((x <= self.max).all()))

    # -- the API schema -------------------------------------------------------------------
    def annotation(self) -> Any:
        """The pydantic type of the field: the same rules as `error`."""
        base: Any
        if self.type == "category":
            base = Literal[self.categories]
        else:
            bounds: dict[str, Any] = {k: v for k, v in (("ge", self.min), ("le", self.max))
                                      if v is not None}
            base = Annotated[int if self.integer else float,
                             Field(allow_inf_nan=False, **bounds), BeforeValidator(_a_number)]
        return base | None if self.nullable else base


def _a_number(value: Any) -> Any:
    """Refuse what pydantic's lax mode would convert ("3", True): a JSON number only."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


class FittedFeatures(Protocol):
    """What `input_fields` reads of a fitted feature transformer: defaults and categories."""

    @property
    def medians_(self) -> Mapping[str, float]: ...
    @property
    def modes_(self) -> Mapping[str, Any]: ...
    @property
    def categories_(self) -> Mapping[str, Sequence[str]]: ...


def input_fields(spec: DatasetSpec, features: FittedFeatures) -> list[dict[str, Any]]:
    """One entry per field an application carries: its constraints, label, unit, default."""
    fields = []
    for name in spec.input_columns():
        col = spec.columns[name]
        numeric = col.role == Role.NUMERIC
        constraints = Constraints.of_column(
            col, None if numeric else features.categories_[name])
        assert constraints is not None  # an input column is numeric or categorical
        field: dict[str, Any] = {
            "name": name,
            "label": col.label or name.replace("_", " ").capitalize(),
            "description": col.description,
            **constraints.as_field(),
        }
        if numeric:
            field.update(unit=col.unit, default=col.default if col.default is not None
                         else features.medians_.get(name))
        else:
            field.update(default=col.default if col.default is not None
                         else features.modes_[name])
        fields.append(field)
    return fields


_COMPILED: dict[int, tuple[Sequence[Mapping[str, Any]], tuple[Constraints, ...]]] = {}


def constraints_of(fields: Sequence[Mapping[str, Any]]) -> tuple[Constraints, ...]:
    """The constraints of each field, compiled once per fields list (a model's inputs)."""
    entry = _COMPILED.get(id(fields))
    if entry is not None and entry[0] is fields:
        return entry[1]
    compiled = tuple(Constraints.of_field(f) for f in fields)
    if len(_COMPILED) >= 64:
        _COMPILED.clear()
    _COMPILED[id(fields)] = (fields, compiled)  # holds the list: its id stays its own
    return compiled


def check_rules(rules: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> dict[str, str]:
    """The spec's cross-field rules on one application's valid values: {field: why}."""
    errors: dict[str, str] = {}
    for rule in rules:
        expr = parse_expression(rule["check"])
        if any(values.get(n) is None for n in expr.names):
            continue  # a missing value is imputed; there is nothing to contradict
        if not bool(expr.evaluate(values)):
            field = rule.get("field") or expr.names[0]
            errors.setdefault(field, rule.get("message") or f"must satisfy {rule['check']}")
    return errors


def validate_application(
    fields: Sequence[Mapping[str, Any]], data: Any, rules: Sequence[Mapping[str, Any]] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check one application against its fields' constraints and the spec's rules:
    (clean values, {field: why it is bad})."""
    if not isinstance(data, Mapping):
        return {}, {"_": "an application must be a JSON object"}
    known = {f["name"] for f in fields}
    errors = {k: "unknown field" for k in data if k not in known}
    clean: dict[str, Any] = {}
    for field, constraints in zip(fields, constraints_of(fields), strict=True):
        name = field["name"]
        if name not in data:
            errors[name] = "is required"
            continue
        value = data[name]
        error = constraints.error(value)
        if error:
            errors[name] = error
        else:
            clean[name] = value
    if not errors:
        errors = check_rules(rules, clean)
    return clean, errors
