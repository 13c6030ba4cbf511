"""The feature steps of a scoring plan: raw applications to the model's numeric matrix.

Imputation and capping are written once, in `FeaturePlan.impute_and_cap`, on a matrix of raw
numeric inputs: a training frame's columns (`credit_risk.pipeline.features`), a batch of
records (serving) and the reasons' typical applicant all go through it, and the warnings (an
input imputed or capped) are read from what it returns. One application of plain numbers (the
API's default request) is prepared in Python floats instead, to the same row, bit for bit, and
the same warnings (`FeaturePlan._prepare_one`; NumPy's overhead would be most of its time).
The steps are checked when the plan is read: a plan whose numbers or shapes do not fit
together is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from credit_risk.errors import CreditRiskError
from credit_risk.spec.codes import category_text
from credit_risk.spec.expressions import parse_expression

UNKNOWN = -2  # a raw categorical value not seen at fit time, before cleaning
_EXACT = 2**53  # ints up to this size are floats exactly (beyond: NumPy converts them)


class PlanError(CreditRiskError, ValueError):
    """A scoring plan that cannot be loaded or used."""


def cap(x: Any, lo: Any, hi: Any) -> np.ndarray:
    """Values within the training range [lo, hi] (numbers, or arrays of them per column);
    NaN (e.g. log1p of -2) becomes 0 first, an infinity the range's end."""
    x = np.asarray(x, dtype=float)
    return np.minimum(np.maximum(np.where(np.isnan(x), 0.0, x), lo), hi)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _finite(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise PlanError(f"the scoring plan's {what} is {value!r}, not a finite number")
    return float(value)


def _range(what: str, step: Mapping[str, Any]) -> tuple[float, float]:
    lo, hi = _finite(f"{what} min", step["min"]), _finite(f"{what} max", step["max"])
    if lo > hi:
        raise PlanError(f"the scoring plan's {what} has min {lo:g} above max {hi:g}")
    return lo, hi


class FeaturePlan:
    """Fitted feature steps as data: raw applications to the model's numeric matrix."""

    def __init__(self, plan: Mapping[str, Any]):
        try:
            self._read(plan)
        except (KeyError, TypeError, AttributeError) as exc:
            raise PlanError(f"malformed feature steps in the scoring plan: {exc!r}") from exc

    def _read(self, plan: Mapping[str, Any]) -> None:
        numeric = plan["numeric"]
        self.inputs: list[str] = [str(c["name"]) for c in numeric]
        self.medians = np.array([_finite(f"median of {c['name']}", c["median"])
                                 for c in numeric], dtype=float)
        ranges = [_range(f"range of {c['name']}", c) for c in numeric]
        self.lows = np.array([lo for lo, _ in ranges], dtype=float)
        self.highs = np.array([hi for _, hi in ranges], dtype=float)
        self.missing_codes = [
            (j, np.array([_finite(f"missing code of {c['name']}", m) for m in c["missing"]]))
            for j, c in enumerate(numeric) if c["missing"]]
        self.features: list[str] = list(plan["features"])
        unknown = [f for f in self.features if f not in self.inputs]
        if unknown:
            raise PlanError(f"the scoring plan's features {unknown} are not numeric inputs")
        self._feature_columns = np.array([self.inputs.index(f) for f in self.features],
                                         dtype=np.intp)
        codes = {j: tuple(c.tolist()) for j, c in self.missing_codes}
        self._numeric_one = [(name, float(m), float(lo), float(hi), codes.get(k, ()))
                             for k, (name, m, lo, hi) in enumerate(zip(
                                 self.inputs, self.medians, self.lows, self.highs, strict=True))]
        self._missing_of: dict[str, set[Any]] = {
            str(c["name"]): {float(m) for m in c["missing"]} for c in numeric}
        self.derived_inputs: dict[str, tuple[str, ...]] = {}
        self.derived = []
        for d in plan["derived"]:
            try:
                expression = parse_expression(d["expr"])
            except ValueError as exc:
                raise PlanError(f"the scoring plan's derived feature {d['name']}: {exc}") from exc
            unknown = [n for n in expression.names if n not in self.inputs]
            if unknown:
                raise PlanError(f"the scoring plan's derived feature {d['name']} uses {unknown}, "
                                "not numeric inputs")
            lo, hi = _range(f"range of {d['name']}", d)
            self.derived.append((str(d["name"]), expression.evaluate, lo, hi))
            self.derived_inputs[str(d["name"])] = tuple(expression.names)
        self._evaluate = [evaluate for _, evaluate, _, _ in self.derived]
        self._derived_lows = np.array([lo for _, _, lo, _ in self.derived], dtype=float)
        self._derived_highs = np.array([hi for _, _, _, hi in self.derived], dtype=float)
        self.categorical = []
        for c in plan["categorical"]:
            if not all(isinstance(v, str) for v in [*c["categories"], *c["replace"].values()]):
                raise PlanError(f"the scoring plan's categories of {c['name']} are not text")
            self._missing_of[str(c["name"])] = {str(m) for m in c["missing"]}
            # a category by its spelling and as a code (1, "1.0": the category "1")
            position = {category_text(cat): i for i, cat in reversed(
                list(enumerate(c["categories"])))}
            position.update({cat: i for i, cat in enumerate(c["categories"])})
            known = {raw: position.get(self._clean(c, raw), -1)
                     for raw in {*c["categories"], *c["replace"]}}
            self.categorical.append((c, position, known))
        sizes = [len(c["categories"]) for c, _, _ in self.categorical]
        self._one_hot_offsets = np.cumsum([0, *sizes[:-1]], dtype=np.intp)
        self.names: list[str] = list(plan["names"])
        self.width = len(self.names)
        expected = [*self.features, *(d[0] for d in self.derived),
                    *(f"{c['name']}={v}" for c, _, _ in self.categorical for v in c["categories"])]
        if self.names != expected:
            raise PlanError(f"the scoring plan names {self.width} features, its steps make "
                            f"{len(expected)} (or in another order): its shapes do not match")

    @staticmethod
    def _clean(column: Mapping[str, Any], value: Any) -> Any:
        """A raw category as the training data was cleaned: stripped (a number as its code),
        replaced, or the mode."""
        if _is_missing(value):
            return column["mode"]
        s = category_text(value)
        s = column["replace"].get(s, s)
        return column["mode"] if s in {str(m) for m in column["missing"]} else s

    def position(self, index: int, value: Any) -> int:
        """The one-hot position of a raw value of categorical column `index` (-1: none)."""
        column, position, known = self.categorical[index]
        hit = known.get(value) if not _is_missing(value) else None
        return hit if hit is not None else position.get(self._clean(column, value), -1)

    def not_given(self, name: str, record: Mapping[str, Any]) -> list[str]:
        """The inputs behind feature `name` (itself, or a derived feature's inputs) that
        `record` lacks: missing, or a value that means missing (both scored as imputed)."""
        return [n for n in self.derived_inputs.get(name, (name,))
                if self.is_absent(n, record.get(n))]

    def is_absent(self, name: str, value: Any) -> bool:
        """Whether `value` of input `name` counts as not given: missing, or a value that means
        missing (both scored as imputed)."""
        codes = self._missing_of.get(name, ())
        kind = type(value)
        if kind is float:  # the common types first, the same answers
            return value != value or value in codes
        if kind is int:
            return value in codes
        if kind is str:
            return value.strip() in codes
        return _is_missing(value) or (
            value if isinstance(value, int | float) and not isinstance(value, bool)
            else str(value).strip()) in codes

    def none_absent(self, name: str, values: list[Any]) -> bool:
        """Whether no value of input `name` in `values` counts as not given (`is_absent`),
        when they are all ints and floats: checked at once (False: some is, or other types)."""
        kinds = set(map(type, values))
        if not kinds <= {int, float} or not self._missing_of.get(name, set()).isdisjoint(values):
            return False
        try:
            return kinds == {int} or not any(map(math.isnan, values))
        except OverflowError:  # an int too large for a float
            return False

    # -- the one implementation of imputation and capping, derived features and encoding ------
    def impute_and_cap(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, inputs) raw numeric inputs (NaN: missing) -> (the values scored, and which were
        imputed): a missing value or missing code is the training median, and every value is
        capped to the training range."""
        x = np.array(raw, dtype=float)
        absent = np.isnan(x)
        for j, codes in self.missing_codes:
            for code in codes:
                absent[:, j] |= x[:, j] == code
        return np.minimum(np.maximum(np.where(absent, self.medians, x), self.lows),
                          self.highs), absent

    def encode(self, raw: np.ndarray, positions: Sequence[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features (n, width), numeric inputs as scored, imputed mask) from raw numeric inputs
        and each categorical column's one-hot positions (-1: none)."""
        n = len(raw)
        used, absent = self.impute_and_cap(raw)
        out = np.zeros((n, self.width), dtype=float)
        j = len(self.features)
        out[:, :j] = used.take(self._feature_columns, axis=1)
        # One application's derived features from floats (the same expressions, cheaper than
        # arrays of one); a batch's from columns.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if n == 1:
                env = dict(zip(self.inputs, used[0].tolist(), strict=True))
                derived = np.array([[evaluate(env) for evaluate in self._evaluate]], dtype=float)
            else:
                env = {name: used[:, k] for k, name in enumerate(self.inputs)}
                derived = np.empty((n, len(self.derived)), dtype=float)
                for k, evaluate in enumerate(self._evaluate):
                    derived[:, k] = evaluate(env)
        out[:, j:j + len(self.derived)] = cap(derived, self._derived_lows, self._derived_highs)
        j += len(self.derived)
        if self.categorical and n == 1:  # one application: its known positions, one by one
            for offset, p in zip(self._one_hot_offsets.tolist(), positions, strict=True):
                if (k := int(p[0])) >= 0:
                    out[0, j + offset + k] = 1.0
        elif self.categorical:  # every one-hot column at once: offset + position, where known
            pos = np.column_stack([np.asarray(p, dtype=np.intp) for p in positions])
            hit = pos >= 0
            out[np.nonzero(hit)[0], (self._one_hot_offsets + j + pos)[hit]] = 1.0
        return out, used, absent

    def assemble(self, numeric: Mapping[str, np.ndarray], positions: Sequence[np.ndarray],
                 n: int) -> np.ndarray:
        """(n, width) features from raw numeric columns by name (a training frame's)."""
        raw = np.empty((n, len(self.inputs)), dtype=float)
        for k, name in enumerate(self.inputs):
            raw[:, k] = numeric[name]
        return self.encode(raw, positions)[0]

    def prepare(self, records: Sequence[Mapping[str, Any]]
                ) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Feature rows of applications (dicts of raw values) and, per application, the inputs
        not scored as given: missing (imputed) or beyond the training range (capped)."""
        if len(records) == 1 and (one := self._prepare_one(records[0])) is not None:
            return one
        n = len(records)
        raw = np.array(_rows_of(records, self.inputs), dtype=float).reshape(n, len(self.inputs))
        positions, unknown = [], []
        for i, (column, _, known) in enumerate(self.categorical):
            values = _rows_of(records, [column["name"]])
            hits = [known.get(v, UNKNOWN) for v in values]  # None: NaN
            odd = [j for j, h in enumerate(hits) if h == UNKNOWN] if UNKNOWN in hits else []
            for j in odd:  # not a known spelling: cleaned (the mode when missing)
                hits[j] = self.position(i, values[j])
            unknown.append([j for j in odd if _is_missing(values[j])])
            positions.append(np.array(hits, dtype=np.intp))
        out, used, absent = self.encode(raw, positions)
        warnings: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        for i, k in zip(*np.nonzero(absent | (used != raw)), strict=True):
            name, value = self.inputs[k], records[i].get(self.inputs[k])
            warnings[i].append(
                _imputed(name, value, float(used[i, k])) if absent[i, k] else
                _capped(name, value, float(used[i, k]), self.lows[k], self.highs[k]))
        for (column, _, _), missing in zip(self.categorical, unknown, strict=True):
            for i in missing:
                warnings[i].append(_imputed(column["name"], None, column["mode"]))
        return out, warnings

    def _prepare_one(self, record: Mapping[str, Any]
                     ) -> tuple[np.ndarray, list[list[dict[str, Any]]]] | None:
        """`prepare` of one application in Python floats: the same values, warnings and
        order (NumPy's maximum and minimum keep the bound when equal: signed zeros too), in a
        fraction of the time. None when a numeric input is neither a number nor None (NumPy
        converts it, as in a batch)."""
        used: list[float] = []
        warnings: list[dict[str, Any]] = []
        for name, median, lo, hi, codes in self._numeric_one:
            v = record.get(name)
            kind = type(v)
            if v is None:
                x = math.nan
            elif kind is float:
                x = v
            elif kind is int and -_EXACT <= v <= _EXACT:
                x = float(v)
            else:
                return None
            if x != x or x in codes:  # imputed
                used.append(median)
                warnings.append(_imputed(name, v, median))
                continue
            u = x if x > lo else lo
            u = u if u < hi else hi
            used.append(u)
            if u != x:
                warnings.append(_capped(name, v, u, lo, hi))
        env = dict(zip(self.inputs, used, strict=True))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            derived = [float(evaluate(env)) for evaluate in self._evaluate]
        row = [used[k] for k in self._feature_columns.tolist()]
        for d, low, high in zip(derived, self._derived_lows.tolist(),
                                self._derived_highs.tolist(), strict=True):
            d = 0.0 if d != d else d  # cap(): NaN is 0, then the training range
            d = d if d > low else low
            row.append(d if d < high else high)
        one_hot = [0.0] * (self.width - len(row))
        for i, ((column, _, known), offset) in enumerate(zip(
                self.categorical, self._one_hot_offsets.tolist(), strict=True)):
            v = record.get(column["name"])
            k = known.get(v, UNKNOWN)
            if k == UNKNOWN:  # not a known spelling: cleaned (the mode when missing)
                k = self.position(i, v)
                if _is_missing(v):
                    warnings.append(_imputed(column["name"], None, column["mode"]))
            if k >= 0:
                one_hot[offset + k] = 1.0
        return np.array([row + one_hot], dtype=float), [warnings]

    def prepare_columns(self, columns: Mapping[str, Sequence[Any]], n: int
                        ) -> tuple[np.ndarray, dict[int, list[dict[str, Any]]]]:
        """`prepare` of `n` applications given as columns ({field: values}): the feature rows
        and the warnings of the rows that have any ({row: warnings}, in `prepare`'s order)."""
        raw = np.empty((n, len(self.inputs)), dtype=float)
        for k, name in enumerate(self.inputs):
            raw[:, k] = np.asarray(columns[name], dtype=float)  # None: NaN
        positions = []
        missing: list[np.ndarray] = []  # per categorical column, its rows without a value
        for i, (column, _, _) in enumerate(self.categorical):
            distinct: dict[Any, int] = {}
            codes = np.array([distinct.setdefault(v, len(distinct))
                              for v in columns[column["name"]]], dtype=np.intp)
            known = np.array([self.position(i, v) for v in distinct], dtype=np.intp)
            positions.append(known[codes] if n else known[:0])
            absent_codes = [c for v, c in distinct.items() if _is_missing(v)]
            missing.append(np.flatnonzero(np.isin(codes, absent_codes)) if absent_codes
                           else np.empty(0, dtype=np.intp))
        out, used, absent = self.encode(raw, positions)
        warnings: dict[int, list[dict[str, Any]]] = {}
        for i, k in zip(*np.nonzero(absent | (used != raw)), strict=True):
            name, value = self.inputs[k], columns[self.inputs[k]][i]
            value = None if _is_missing(value) else value.item() \
                if isinstance(value, np.generic) else value
            warnings.setdefault(int(i), []).append(
                _imputed(name, value, float(used[i, k])) if absent[i, k] else
                _capped(name, value, float(used[i, k]), self.lows[k], self.highs[k]))
        for (column, _, _), rows in zip(self.categorical, missing, strict=True):
            for i in rows.tolist():
                warnings.setdefault(i, []).append(_imputed(column["name"], None, column["mode"]))
        return out, warnings

    def matrix(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Applications (dicts of raw values) to an (n, width) matrix."""
        return self.prepare(records)[0]

    def row(self, record: Mapping[str, Any]) -> np.ndarray:
        """One application to a (1, width) row."""
        return self.prepare([record])[0]


def _rows_of(records: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[Any]:
    """Each record's values of `names` (a tuple each, or the value for one name); None for
    a name a record lacks. With itemgetter: several times faster than a dict.get per cell."""
    if not names:
        return [()] * len(records)
    try:
        return list(map(itemgetter(*names), records))
    except KeyError:
        if len(names) == 1:
            return [r.get(names[0]) for r in records]
        return [tuple(r.get(name) for name in names) for r in records]


def _capped(name: str, value: Any, used: float, lo: float, hi: float) -> dict[str, Any]:
    return {"field": name, "value": value, "used": used,
            "message": f"outside the training range [{lo:g}, {hi:g}]: scored as {used:g}"}


def _imputed(name: str, value: Any, used: Any) -> dict[str, Any]:
    said = "missing" if _is_missing(value) else f"{value:g} means missing in the training data"
    shown = f"{used:g}" if isinstance(used, float) else repr(used)
    return {"field": name, "value": None if _is_missing(value) else value, "used": used,
            "message": f"{said}: scored as the typical value {shown}"}
