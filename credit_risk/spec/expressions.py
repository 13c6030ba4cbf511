"""Derived-feature expressions: a tiny, safe arithmetic language over numeric columns.

Allowed: column names, numbers, ``+ - * /``, unary minus, the functions ``log1p``,
``abs``, ``min``, ``max``, and for rules one comparison (``< <= > >= == !=``) joined by
``and`` / ``or``. Division by zero gives 0 (for example
``total_dpd / delinquent_months`` is 0 when there was no delinquency). The same
compiled expression works on floats (serving) and NumPy arrays (training), and gives the
range of its values from the ranges of its columns (the validation suites' derived checks).
This is the project's only parser of expressions.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from credit_risk.errors import CreditRiskError

Value = Any  # float or np.ndarray
Env = Mapping[str, Value]
Interval = tuple[float, float, bool]  # low, high (may be infinite), whole numbers only


def safe_divide(a: Value, b: Value) -> Value:
    """a / b, and 0 where b is 0."""
    if (type(a) is float or np.ndim(a) == 0) and (type(b) is float or np.ndim(b) == 0):
        return float(a) / float(b) if b != 0 else 0.0
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    out = np.zeros(a.shape, dtype=float)
    np.divide(a, b, out=out, where=b != 0)
    return out


_FUNCTIONS: dict[str, tuple[Callable[..., Value], int]] = {  # function, number of arguments
    "log1p": (np.log1p, 1),
    "abs": (np.abs, 1),
    "min": (np.minimum, 2),
    "max": (np.maximum, 2),
}
_BINARY: dict[type, Callable[[Value, Value], Value]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: safe_divide,
}


_COMPARE: dict[type, Callable[[Value, Value], Value]] = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
    ast.Eq: np.equal, ast.NotEq: np.not_equal,
}
_BOOL: dict[type, Callable[[Value, Value], Value]] = {ast.And: np.logical_and,
                                                      ast.Or: np.logical_or}


class ExpressionError(CreditRiskError, ValueError):
    """An expression (a derived feature or a rule of a spec) that is not allowed or not valid."""


@dataclass(frozen=True)
class Expression:
    source: str
    names: tuple[str, ...]
    evaluate: Callable[[Env], Value]
    tree: ast.expr = field(repr=False, compare=False)

    def bounds(self, ranges: Mapping[str, Interval]) -> tuple[float | None, float | None]:
        """The range of the expression's values when each column is within its range
        (low, high, integer); None where no finite bound follows."""
        lo, hi, _ = _interval(self.tree, ranges)
        return (None if math.isinf(lo) else lo), (None if math.isinf(hi) else hi)


def _compile(node: ast.AST, names: list[str]) -> Callable[[Env], Value]:
    if isinstance(node, ast.Name):
        names.append(node.id)
        key = node.id
        return lambda env: env[key]
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        value = float(node.value)
        return lambda env: value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _compile(node.operand, names)
        return lambda env: -inner(env)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left, right = _compile(node.left, names), _compile(node.right, names)
        return lambda env: op(left(env), right(env))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        fn, arity = _FUNCTIONS[node.func.id]
        if len(node.args) != arity:
            raise ExpressionError(
                f"{node.func.id}() takes {arity} argument(s): {ast.unparse(node)!r}")
        args = [_compile(a, names) for a in node.args]
        return lambda env: fn(*(a(env) for a in args))
    if (isinstance(node, ast.Compare) and len(node.ops) == 1
            and type(node.ops[0]) in _COMPARE):
        cmp = _COMPARE[type(node.ops[0])]
        left, right = _compile(node.left, names), _compile(node.comparators[0], names)
        return lambda env: cmp(left(env), right(env))
    if isinstance(node, ast.BoolOp) and type(node.op) in _BOOL:
        join = _BOOL[type(node.op)]
        parts = [_compile(v, names) for v in node.values]

        def boolean(env: Env) -> Value:
            out = parts[0](env)
            for part in parts[1:]:
                out = join(out, part(env))
            return out

        return boolean
    raise ExpressionError(f"unsupported syntax {ast.unparse(node)!r}")


@lru_cache(maxsize=256)
def parse_expression(source: str) -> Expression:
    """Compile an expression, or raise ExpressionError naming what is not allowed."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {source!r}") from exc
    names: list[str] = []
    fn = _compile(tree.body, names)
    return Expression(source, tuple(dict.fromkeys(names)), fn, tree.body)


# -- ranges: interval arithmetic over the same (already checked) syntax ---------------------
def _interval(node: ast.AST, ranges: Mapping[str, Interval]) -> Interval:
    inf = math.inf
    if isinstance(node, ast.Name):
        return ranges.get(node.id, (-inf, inf, False))
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        v = float(node.value)
        return v, v, v.is_integer()
    if isinstance(node, ast.UnaryOp):
        lo, hi, i = _interval(node.operand, ranges)
        return -hi, -lo, i
    if isinstance(node, ast.BinOp):
        a, b = _interval(node.left, ranges), _interval(node.right, ranges)
        if isinstance(node.op, ast.Add | ast.Sub):
            sign = 1 if isinstance(node.op, ast.Add) else -1
            return _hull([x + sign * y for x in a[:2] for y in b[:2]], a[2] and b[2])
        if isinstance(node.op, ast.Mult):
            return _hull([_mul(x, y) for x in a[:2] for y in b[:2]], a[2] and b[2])
        lo, hi, integer = b  # division; x / 0 is 0
        if lo <= 0 <= hi:  # a whole divisor is 0 or at least 1 away from 0
            if not integer or (lo < 0 < hi):
                return -inf, inf, False
            lo, hi = (1, hi) if lo == 0 else (lo, -1)
            return _hull([0.0] + [_div(x, y) for x in a[:2] for y in (lo, hi)], False)
        return _hull([_div(x, y) for x in a[:2] for y in (lo, hi)], False)
    return -inf, inf, False  # functions and comparisons: no bound derived


def _mul(x: float, y: float) -> float:
    return 0.0 if x == 0 or y == 0 else x * y


def _div(x: float, y: float) -> float:
    if math.isinf(y):
        return 0.0 if not math.isinf(x) else math.copysign(math.inf, x * y)
    return x / y


def _hull(values: list[float], integer: bool) -> Interval:
    return min(values), max(values), integer
