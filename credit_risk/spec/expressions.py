"""Derived-feature expressions: a tiny, safe arithmetic language over numeric columns.

Allowed: column names, numbers, ``+ - * /``, unary minus, the functions ``log1p``,
``abs``, ``min``, ``max``, and for rules one comparison (``< <= > >= == !=``) joined by
``and`` / ``or``. Division by zero gives 0 (for example
``total_dpd / delinquent_months`` is 0 when there was no delinquency). The same
compiled expression works on floats (serving) and NumPy arrays (training).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from credit_risk.errors import CreditRiskError

Value = Any  # float or np.ndarray
Env = Mapping[str, Value]


def safe_divide(a: Value, b: Value) -> Value:
    """a / b, and 0 where b is 0."""
    if np.ndim(a) == 0 and np.ndim(b) == 0:
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
    return Expression(source, tuple(dict.fromkeys(names)), fn)
