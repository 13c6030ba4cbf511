"""The application schema of a model (from its dataset spec) and validation of inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from credit_risk.spec.dataset import DatasetSpec, Role
from credit_risk.spec.expressions import parse_expression

if TYPE_CHECKING:
    from credit_risk.pipeline.features import FeatureTransformer


def input_fields(spec: DatasetSpec, features: FeatureTransformer) -> list[dict[str, Any]]:
    """One entry per field an application carries: type, bounds, categories, label, default."""
    fields = []
    for name in spec.input_columns():
        col = spec.columns[name]
        field: dict[str, Any] = {
            "name": name,
            "label": col.label or name.replace("_", " ").capitalize(),
            "description": col.description,
            "nullable": col.max_null_rate > 0,
        }
        if col.role == Role.NUMERIC:
            field.update(type="integer" if col.integer else "number", unit=col.unit,
                         min=col.min, max=col.max,
                         default=col.default if col.default is not None
                         else features.medians_.get(name))
        else:
            cats = features.categories_[name]
            field.update(type="category", categories=list(cats),
                         default=col.default if col.default is not None else features.modes_[name])
        fields.append(field)
    return fields


def _check_number(field: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, "must be a number"
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        return None, "must be a finite number"
    if field["type"] == "integer" and value != int(value):
        return None, "must be a whole number"
    if field.get("min") is not None and value < field["min"]:
        return None, f"must be at least {field['min']:g}"
    if field.get("max") is not None and value > field["max"]:
        return None, f"must be at most {field['max']:g}"
    return value, None


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
    fields: list[dict[str, Any]], data: Any, rules: Sequence[Mapping[str, Any]] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check one application against the schema and the spec's rules:
    (clean values, {field: why it is bad})."""
    if not isinstance(data, Mapping):
        return {}, {"_": "an application must be a JSON object"}
    known = {f["name"] for f in fields}
    errors = {k: "unknown field" for k in data if k not in known}
    clean: dict[str, Any] = {}
    for field in fields:
        name = field["name"]
        if name not in data:
            errors[name] = "is required"
            continue
        value = data[name]
        if value is None:
            if field["nullable"]:
                clean[name] = None
            else:
                errors[name] = "must not be null"
            continue
        if field["type"] == "category":
            if not isinstance(value, str):
                errors[name] = "must be a string"
            elif value not in field["categories"]:
                errors[name] = f"must be one of: {', '.join(field['categories'])}"
            else:
                clean[name] = value
            continue
        checked, error = _check_number(field, value)
        if error:
            errors[name] = error
        else:
            clean[name] = checked
    if not errors:
        errors = check_rules(rules, clean)
    return clean, errors
