"""Batch scoring by columns: validate a chunk of applications field by field, score the valid
rows, and give each result as a column (what `credit-risk predict` writes).

The checks and messages are those of `credit_risk.spec.fields.validate_application` (the same
`Constraints`, cleaning rules included), run column by column: a column that passes the NumPy
fast path is taken whole, a category column is cleaned once per distinct value, and only the
cells of a column that fails it are checked one by one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from credit_risk.scoring.decide import DecisionLog, decide
from credit_risk.scoring.scorer import Scorer
from credit_risk.spec.fields import broken_rules, constraints_of

RESULT_COLUMNS = ("probability_of_default", "risk", "credit_score", "rating", "grade",
                  "reasons", "warnings", "model_version", "error")


def validate_columns(fields: Sequence[Mapping[str, Any]], columns: Mapping[str, Sequence[Any]],
                     rules: Sequence[Mapping[str, Any]], n: int
                     ) -> tuple[dict[str, Sequence[Any]], dict[int, dict[str, str]]]:
    """(clean columns, {row: {field: why}}) of `n` applications given as columns. A numeric
    column may be a float array (NaN: missing): it stays one when every value is valid."""
    clean: dict[str, Sequence[Any]] = {}
    errors: dict[int, dict[str, str]] = {}
    for field, constraints in zip(fields, constraints_of(fields), strict=True):
        name = field["name"]
        given = columns[name]
        if isinstance(given, np.ndarray) and constraints.all_valid_array(given):
            clean[name] = given
            continue
        column = as_values(given)
        if constraints.all_valid(column):
            clean[name] = column
            continue
        if constraints.type == "category":  # few distinct values: clean each once
            memo = {v: constraints.clean(v) for v in set(column)}
            checked = [memo[v] for v in column]
        else:
            checked = [constraints.clean(v) for v in column]
        clean[name] = [value for value, _ in checked]
        for i, (_, why) in enumerate(checked):
            if why:
                errors.setdefault(i, {})[name] = why
    for i, broken in broken_rules(rules, clean, n).items():
        if i not in errors:  # rules only on rows whose fields are valid
            errors[i] = broken
    return clean, errors


def as_values(column: Sequence[Any]) -> list[Any]:
    """A column as a list of application values (a float array's NaN: None)."""
    if isinstance(column, np.ndarray):
        return [None if v != v else v for v in column.tolist()]
    return list(column)


def _decided(scorer: Scorer, clean: Mapping[str, Sequence[Any]], valid: Sequence[int],
             ids: Sequence[str | None] | None, log: DecisionLog, request_id: str
             ) -> dict[str, list[Any]]:
    """The valid rows decided and recorded in `log` (credit_risk.scoring.decide), as columns."""
    names = [f["name"] for f in scorer.fields]
    values = {name: as_values(clean[name]) for name in names}
    records = [{name: values[name][i] for name in names} for i in valid]
    if ids is not None:
        records = [{**r, "application_id": ids[i]} if ids[i] else r
                   for i, r in zip(valid, records, strict=True)]
    results = decide(scorer, records, log, request_id)
    out: dict[str, list[Any]] = {
        c: [r[c] for r in results]
        for c in ("probability_of_default", "risk", "credit_score", "rating", "grade",
                  "model_version")}
    out["reasons"] = ["; ".join(x["text"] for x in r["reasons"]) for r in results]
    out["warnings"] = ["; ".join(f"{w['field']} {w['message']}" for w in r["warnings"])
                       for r in results]
    return out


def score_columns(scorer: Scorer, columns: Mapping[str, Sequence[Any]], n: int,
                  ids: Sequence[str | None] | None = None,
                  id_errors: Mapping[int, dict[str, str]] | None = None,
                  log: DecisionLog | None = None, request_id: str = "batch"
                  ) -> dict[str, list[Any]]:
    """The result columns (RESULT_COLUMNS) of `n` applications given as raw field columns: a
    row that fails validation gets `error` and no PD. `ids`: each row's application id,
    recorded with its decision in `log` (when given) but not scored."""
    clean, errors = validate_columns(scorer.fields, columns, scorer.rules, n)
    for i, why in (id_errors or {}).items():
        errors[i] = {**errors.get(i, {}), **why}
    valid = [i for i in range(n) if i not in errors]
    out: dict[str, list[Any]] = {c: [None] * n for c in RESULT_COLUMNS}
    for i, why in errors.items():
        out["error"][i] = "; ".join(f"{k} {v}" for k, v in why.items())
    if not valid:
        return out
    if log is None:  # by columns, the whole way
        rows = np.asarray(valid, dtype=np.intp)
        taken = clean if len(valid) == n else {
            k: v[rows] if isinstance(v, np.ndarray) else [v[i] for i in valid]
            for k, v in clean.items()}
        results = scorer.score_columns(taken, len(valid))
    else:  # one decision record per row
        results = _decided(scorer, clean, valid, ids, log, request_id)
    if len(valid) == n:
        return {**out, **results}
    for c, values in results.items():
        column = out[c]
        for i, v in zip(valid, values, strict=True):
            column[i] = v
    return out
