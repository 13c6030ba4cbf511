"""`spec check`: what in a data file does not fit its dataset spec, before any training.

Columns missing or not in the spec, text in numeric columns, values beyond a column's bounds
or outside its categories (after the spec's cleaning), the target's values, missing rates over
what the spec allows and a key that is not unique. Needs pandas (the pipeline extra); the
serving slice never imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from credit_risk.spec.codes import category_text
from credit_risk.spec.dataset import Column, DatasetSpec, Role
from credit_risk.spec.draft import as_text, read_data

EXAMPLES = 5  # bad values quoted per problem


def _examples(values: pd.Series) -> str:
    counts = values.map(str).value_counts()
    shown = ", ".join(f"{v!r} ({n})" for v, n in counts.head(EXAMPLES).items())
    return shown + (f", ... {len(counts) - EXAMPLES} more" if len(counts) > EXAMPLES else "")


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def _missing(s: pd.Series, col: Column) -> pd.Series:
    """Which values are missing: empty, or one of the column's `missing_values`."""
    miss = s.isna()
    if col.missing_values:
        codes = {category_text(v) for v in col.missing_values}
        miss |= as_text(s).isin(codes)
    return miss


def _numeric(name: str, s: pd.Series, col: Column) -> list[str]:
    problems = []
    x = pd.to_numeric(s, errors="coerce")
    text = s[x.isna() & s.notna()]
    if len(text):
        problems.append(f"{name}: {_rows(len(text))} not numbers: {_examples(text)}")
    x = x.dropna()
    if col.integer and (x % 1 != 0).any():
        odd = s[x.index[x % 1 != 0]]
        problems.append(f"{name}: {_rows(len(odd))} not whole numbers: {_examples(odd)}")
    for bound, outside in (("min", x < col.min if col.min is not None else None),
                           ("max", x > col.max if col.max is not None else None)):
        if outside is not None and outside.any():
            limit = col.min if bound == "min" else col.max
            problems.append(f"{name}: {_rows(int(outside.sum()))} beyond {bound} {limit:g}: "
                            f"{_examples(s[outside[outside].index])}")
    return problems


def _categorical(name: str, s: pd.Series, col: Column) -> list[str]:
    if not col.categories:
        return []
    text = as_text(s).dropna()
    if col.replace:
        text = text.replace(col.replace)
    allowed = {*col.categories, *(category_text(v) for v in col.missing_values)}
    outside = text[~text.isin(allowed)]
    if not len(outside):
        return []
    return [f"{name}: {_rows(len(outside))} outside the categories: {_examples(outside)}"]


def _target(spec: DatasetSpec, s: pd.Series) -> list[str]:
    name, positive = spec.target.column, spec.target.positive
    problems = []
    if s.isna().any():
        problems.append(f"{name} (target): missing in {_rows(int(s.isna().sum()))}")
    values = s.dropna()
    distinct = sorted(as_text(values).unique())
    if len(distinct) != 2:
        problems.append(f"{name} (target): {len(distinct)} distinct values "
                        f"({', '.join(map(repr, distinct[:EXAMPLES]))}); a target has two")
    if not bool(spec.is_default(values).any()):
        problems.append(f"{name} (target): no row has the default value {positive!r} "
                        f"(values: {', '.join(map(repr, distinct[:EXAMPLES]))})")
    return problems


def check_data(spec: DatasetSpec, df: pd.DataFrame) -> list[str]:
    """Every way the frame does not fit the spec, one line each (none: it fits)."""
    problems: list[str] = []
    single = len(spec.tables) == 1
    in_file = set(map(str, df.columns))
    for name, col in spec.columns.items():
        elsewhere = not single and (col.table or spec.base) != spec.base
        if name not in in_file:
            if not elsewhere and col.role != Role.IGNORED:
                problems.append(f"{name}: in the spec ({col.role.value}), not in the file")
            continue
        s = df[name]
        if name == spec.target.column:
            problems += _target(spec, s)
            continue
        if col.role in (Role.IGNORED, Role.DATE):
            continue
        miss = _missing(s, col)
        rate = float(miss.mean()) if len(s) else 0.0
        if rate > col.max_null_rate:
            problems.append(f"{name}: missing in {rate:.1%} of rows, the spec allows "
                            f"{col.max_null_rate:.1%} (max_null_rate)")
        present = s[~miss]
        if col.role == Role.NUMERIC:
            problems += _numeric(name, present, col)
        elif col.role == Role.CATEGORICAL:
            problems += _categorical(name, present, col)
    extra = [c for c in map(str, df.columns) if c not in spec.columns]
    if extra and single:
        problems.append(f"columns not in the spec (add them, e.g. as role: ignored): "
                        f"{', '.join(extra)}")
    key = spec.tables[spec.base].key
    if key and key in in_file and df[key].duplicated().any():
        dupes = df[key][df[key].duplicated()]
        problems.append(f"{key}: the table's key has {_rows(len(dupes))} repeating another: "
                        f"{_examples(dupes)}")
    return problems


def check_file(spec: DatasetSpec, path: Path) -> list[str]:
    """`check_data` on a CSV or Parquet file."""
    df: Any = read_data(path)
    return check_data(spec, df)
