"""An application's fields: what each accepts, defined once, and validation of inputs.

`Constraints` is the one definition of what a field accepts (type, bounds, whole numbers,
categories, null). Text is checked here too (`text_error`): a lone UTF-16 surrogate, a
control character (NUL...), a bidirectional control mark or an over-long string is refused with
a message naming the field; a category matches in Unicode normal form NFC, so a canonically
equivalent spelling (e.g. decomposed accents from a browser) is the category as the model spells
it. The validator here (one application, or a batch column by column), the
API's pydantic/OpenAPI schema (`credit_risk.scoring.request`) and the raw-table GX suites
(`credit_risk.validation.suites`) all derive from it. A published model's input fields (its
manifest's ``inputs``) carry the same keys, so a version stays self-describing.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import BeforeValidator, Field

from credit_risk.spec.codes import category_text
from credit_risk.spec.dataset import Column, DatasetSpec, Role
from credit_risk.spec.expressions import parse_expression
from credit_risk.tables import label_of

Kind = Literal["number", "integer", "category"]
_NUMBER_TYPES = frozenset({int, float})
MAX_TEXT_CHARS = 200  # a category value longer than this (and than every category) is refused
# Lone UTF-16 surrogates (also bytes that were not UTF-8, read with surrogateescape), C0 and C1
# control characters, and the bidirectional controls (Trojan Source marks).
ODD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                       "\ud800-\udfff]")


def text_error(text: str, max_chars: int = MAX_TEXT_CHARS) -> str | None:
    """Why a text value is refused (over-long, lone surrogate, control or bidi mark), or None."""
    if len(text) > max_chars:
        return f"must be at most {max_chars} characters"
    odd = ODD_CHARS.search(text)
    if odd is None:
        return None
    char = odd.group()
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        return f"must be valid UTF-8 text ({code}: a lone surrogate, or a byte that is not UTF-8)"
    if unicodedata.category(char) == "Cc":
        return "must not contain control characters"  # such as NUL, a newline, a tab
    return f"must not contain bidirectional control marks ({code})"


def shown(text: str) -> str:
    """`text` with the characters `text_error` refuses written as \\uXXXX: safe to echo."""
    return ODD_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True, slots=True)
class Constraints:
    """What one field accepts."""

    type: Kind
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    # The spec's cleaning rules, as training applies them: raw value -> category, and the
    # raw values that mean missing (scored as the typical value).
    replace: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = ()

    @classmethod
    def of_column(cls, col: Column, categories: Sequence[str] | None = None
                  ) -> Constraints | None:
        """A spec column's constraints (None for ids, dates, the target and ignored columns
        without bounds). `categories`: the fitted ones of a model, else the spec's."""
        nullable = col.max_null_rate > 0
        if col.role == Role.CATEGORICAL:
            cats = categories if categories is not None else col.categories or ()
            return cls("category", nullable, categories=tuple(cats),
                       **cleaning(col.replace, col.missing_values))
        if col.role == Role.NUMERIC or (
                col.role == Role.IGNORED and (col.min is not None or col.max is not None)):
            return cls("integer" if col.integer else "number", nullable, col.min, col.max,
                       **cleaning({}, col.missing_values))
        return None

    @classmethod
    def of_field(cls, field: Mapping[str, Any]) -> Constraints:
        """The constraints of an input field (an entry of a manifest's ``inputs``)."""
        rules = cleaning(field.get("replace") or {}, field.get("missing") or ())
        if field["type"] == "category":
            return cls("category", field["nullable"], categories=tuple(field["categories"]),
                       **rules)
        return cls(field["type"], field["nullable"], field.get("min"), field.get("max"), **rules)

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
        return self.clean(value)[1]

    def clean(self, value: Any) -> tuple[Any, str | None]:
        """(the value as scored, None) or (None, why it is refused). A category sent in another
        Unicode normal form than the model's spelling is that category, and so is a numeric
        code in any spelling (1, 1.0, "1" and "1.0" are the category "1")."""
        if self.type == "category" and value is not None:
            if isinstance(value, str) and value in self.categories:
                return value, None
            if isinstance(value, bool):
                return None, f"must be a category, not a boolean ({str(value).lower()})"
            if isinstance(value, str):
                why = text_error(value, max(MAX_TEXT_CHARS, *map(len, self.categories)))
                if why:
                    return None, why
                value = nfc(value)
            elif not isinstance(value, int | float):
                return None, "must be a string"
            text = category_text(value)  # stripped, as training cleans it; a code as digits
            text = dict(self.replace).get(text, text)
            if text in self.missing:
                return None, None  # means missing: scored as the typical value
            spelled = {nfc(category_text(c)): c for c in reversed(self.categories)}
            category = spelled.get(text)
            if category is not None:
                return category, None
            return None, f"must be one of: {', '.join(self.categories)}"
        if self.missing and isinstance(value, int | float) and not isinstance(value, bool) \
                and any(value == float(m) for m in self.missing):
            return value, None  # a missing code: the plan scores it as the training median
        why = self._number_error(value)
        return (None, why) if why else (value, None)

    def _number_error(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else "must not be null"
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

    def all_valid_array(self, x: np.ndarray) -> bool:
        """`all_valid` of a numeric field's float array (NaN: missing)."""
        if self.type == "category" or x.dtype.kind != "f":
            return False
        present = x[~np.isnan(x)]
        if len(present) < len(x) and not self.nullable:
            return False
        if not np.isfinite(present).all():
            return False
        if self.integer and not (present == np.floor(present)).all():
            return False
        return (self.min is None or bool((present >= self.min).all())) and \
            (self.max is None or bool((present <= self.max).all()))

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


def cleaning(replace: Mapping[str, str], missing: Sequence[Any]) -> dict[str, Any]:
    """`Constraints`' cleaning keywords from a spec column's `replace` and `missing_values`."""
    return {"replace": tuple((str(k), str(v)) for k, v in replace.items()),
            "missing": tuple(str(m) for m in missing)}


def with_cleaning(fields: Sequence[Mapping[str, Any]], spec: Mapping[str, Any]
                  ) -> list[dict[str, Any]]:
    """A model's input fields, each with its spec column's cleaning rules (`replace`,
    `missing`), so that every scoring path cleans a value as training did."""
    columns = spec.get("columns") or {}
    out = []
    for field in fields:
        col = columns.get(field["name"]) or {}
        rules = {k: v for k, v in (("replace", col.get("replace")),
                                   ("missing", col.get("missing_values"))) if v}
        out.append({**field, **rules} if rules else dict(field))
    return out


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
            "label": col.label or label_of(name),
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


def rule_violations(rules: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
                    ) -> list[dict[str, str]]:
    """The spec's cross-field rules on valid applications, column by column: per application,
    {field: why} of each rule it breaks. A missing (None) value breaks none: it is imputed."""
    names = {n for rule in rules for n in parse_expression(rule["check"]).names}
    columns = {n: [item.get(n) for item in items] for n in names}
    return column_rule_violations(rules, columns, len(items))


def column_rule_violations(rules: Sequence[Mapping[str, Any]],
                           columns: Mapping[str, Sequence[Any]], n: int
                           ) -> list[dict[str, str]]:
    """`rule_violations` of `n` valid applications given as columns ({field: values})."""
    out: list[dict[str, str]] = [{} for _ in range(n)]
    for i, broken in broken_rules(rules, columns, n).items():
        out[i] = broken
    return out


def broken_rules(rules: Sequence[Mapping[str, Any]], columns: Mapping[str, Sequence[Any]],
                 n: int) -> dict[int, dict[str, str]]:
    """`column_rule_violations` of only the rows that break a rule: {row: {field: why}}."""
    out: dict[int, dict[str, str]] = {}
    for rule in rules:
        expr = parse_expression(rule["check"])
        env = {name: np.array(columns[name], dtype=float) for name in expr.names}
        missing = np.zeros(n, dtype=bool)
        for x in env.values():
            missing |= np.isnan(x)
        with np.errstate(invalid="ignore"):
            holds = np.broadcast_to(expr.evaluate(env), (n,))
        field = rule.get("field") or expr.names[0]
        why = rule.get("message") or f"must satisfy {rule['check']}"
        for i in np.flatnonzero(~(holds | missing)).tolist():
            out.setdefault(i, {}).setdefault(field, why)
    return out


def check_rules(rules: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> dict[str, str]:
    """The spec's cross-field rules on one application's valid values: {field: why}.
    `rule_violations` of one application, evaluated on floats rather than arrays of one (the
    same IEEE arithmetic, a few times faster); anything else goes through `rule_violations`."""
    out: dict[str, str] = {}
    for rule in rules:
        expr = parse_expression(rule["check"])
        try:
            env = {name: math.nan if (v := values.get(name)) is None else float(v)
                   for name in expr.names}
        except (TypeError, ValueError, OverflowError):
            return rule_violations(rules, [values])[0]
        if any(x != x for x in env.values()):  # a missing value breaks no rule: it is imputed
            continue
        with np.errstate(invalid="ignore"):
            holds = expr.evaluate(env)
        if not isinstance(holds, bool | np.bool_):
            return rule_violations(rules, [values])[0]
        if not holds:
            out.setdefault(rule.get("field") or expr.names[0],
                           rule.get("message") or f"must satisfy {rule['check']}")
    return out


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
        value, error = constraints.clean(data[name])
        if error:
            errors[name] = error
        else:
            clean[name] = value
    if not errors:
        errors = check_rules(rules, clean)
    return clean, errors
