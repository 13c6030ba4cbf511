"""`spec init`: a draft dataset spec from a data file, with what each column looks like.

Each column gets a role (numeric, categorical, id, date, target, ignored) from its values and
its name; the draft says why in comments: categories with their counts, observed ranges,
missing rates, and warnings for columns that look like they leak the outcome, are constant or
are mostly missing (those are `ignored` in the draft). Needs pandas (the pipeline extra); the
serving slice never imports this module.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.spec.codes import category_text
from credit_risk.spec.dataset import SpecError

MOSTLY_MISSING = 0.5  # a column missing in at least this share of rows is ignored
SEPARATES = 0.98  # a single-feature ROC-AUC above this is a leak, not a predictor
FEW_CODES = 3  # whole numbers with at most this many distinct values are category codes
MAX_CODES = 50  # ... and at most this many when the name says code, type, flag
MAX_CATEGORIES = 100  # more distinct texts than this: free text or an id, ignored
SHOWN_CATEGORIES = 50  # categories listed in the draft's comments

# Known only after the outcome: charged-off amounts, recoveries, collection, closing.
LEAK_NAME = re.compile(
    r"recover|charge_?off|charged_?off|write_?off|written_?off|collection|settle|closed|"
    r"closing|loan_status|status_date|last_pay|last_pymnt|total_rec|paid_off|payoff|"
    r"out_prncp|default_date|date_of_default")
CODE_NAME = re.compile(r"(^|_)(code|codes|cd|type|flag|ind|indicator|class|category|group|"
                       r"kind|segment|sector|industry)($|_)")
ID_NAME = re.compile(r"(^|_)(id|key|uuid|number|no|nr)$|^id_")
DATE_NAME = re.compile(r"(^|_)(date|dt|day|time|timestamp)($|_)")
PROTECTED_NAME = re.compile(r"(^|_)(gender|sex|race|ethnicity|religion|marital|age|"
                            r"nationality|foreign)($|_)")
POSITIVE_WORDS = ("1", "bad", "default", "defaulted", "yes", "y", "true", "charged off",
                  "charged_off", "chargedoff")
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]|[A-Za-z_]")


def snake(name: str) -> str:
    """A column name in lower snake case, to match name patterns (`UrbanRural` -> urban_rural)."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+", "_", name)
    return name.strip("_").lower()


def as_text(s: pd.Series) -> pd.Series:
    """Each value's category text (`category_text`), missing values kept missing: computed
    once per distinct value, not once per row."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    texts = np.array([category_text(u) for u in uniques] + [None], dtype=object)
    return pd.Series(texts[codes], index=s.index, dtype=object)  # code -1 picks None


def read_data(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, with a clear error when it cannot be read."""
    if not path.is_file():
        raise SpecError(f"no data file at {path}")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise SpecError(f"cannot read {path}: {exc}") from exc


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC of a score for a boolean outcome (ties count half), by ranks."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def separation(values: pd.Series, positive: np.ndarray, categorical: bool) -> float:
    """How well one column alone separates the outcome: max(AUC, 1 - AUC)."""
    if categorical:  # each category scored by its default rate (missing is one category)
        keys = as_text(values).fillna("\0missing")
        score = pd.Series(positive, index=values.index).groupby(keys).transform("mean")
        x = score.to_numpy(dtype=float)
    else:
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        x = np.where(np.isnan(x), np.nanmedian(x) if (~np.isnan(x)).any() else 0.0, x)
    a = auc(x, positive)
    return max(a, 1 - a)


@dataclass
class ColumnDraft:
    """One column of the draft: its role and what the file shows of it."""

    name: str
    role: str
    missing: float
    integer: bool = False
    low: float | None = None
    high: float | None = None
    counts: list[tuple[str, int]] = field(default_factory=list)
    protected: bool = False
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Draft:
    """A draft spec: the file, the target and its default value, the key, the columns."""

    name: str
    source: str
    file_format: str
    rows: int
    target: str
    positive: Any
    key: str | None
    columns: list[ColumnDraft]

    @property
    def warnings(self) -> list[str]:
        return [f"{c.name}: {w}" for c in self.columns for w in c.warnings]


def _numeric_like(s: pd.Series) -> pd.Series | None:
    """The column as numbers when every non-missing value is one, else None."""
    if pd.api.types.is_bool_dtype(s):
        return None
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float)
    x = pd.to_numeric(s, errors="coerce")
    return x.astype(float) if x.notna().sum() == s.notna().sum() else None


def _positive(values: pd.Series) -> Any:
    """The target value that means default: a known word or 1, else the rarer class."""
    counts = values.value_counts()
    if len(counts) != 2:
        shown = ", ".join(map(str, counts.index[:5]))
        raise SpecError(f"the target has {len(counts)} distinct values ({shown}): a target "
                        "has two, one meaning default")
    for value in counts.index:
        if category_text(value).lower() in POSITIVE_WORDS:
            return value
    return counts.index[-1]


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def profile_column(name: str, s: pd.Series, rows: int) -> ColumnDraft:
    """A column's role from its values and name (the target and leaks are decided apart)."""
    missing = float(s.isna().mean()) if rows else 0.0
    col = ColumnDraft(name, "ignored", missing)
    nonnull = s.dropna()
    text = as_text(nonnull)
    distinct = text.nunique()
    key = snake(name)
    col.protected = bool(PROTECTED_NAME.search(key))
    if distinct == 0:
        col.warnings.append("has no values")
        return col
    if distinct == 1:
        col.warnings.append(f"is constant ({category_text(nonnull.iloc[0])!r}): no information")
        return col
    if missing >= MOSTLY_MISSING:
        col.warnings.append(f"is mostly missing ({missing:.0%} of rows)")
        return col
    numbers = _numeric_like(s)
    whole = numbers is not None and bool((numbers.dropna() % 1 == 0).all())
    unique = distinct == len(nonnull) == rows
    if unique and not pd.api.types.is_float_dtype(s) and (ID_NAME.search(key) or numbers is None):
        col.role = "id"
        return col
    if numbers is not None and not (whole and (
            distinct <= FEW_CODES or (CODE_NAME.search(key) and distinct <= MAX_CODES))):
        col.role, col.integer = "numeric", whole
        col.low, col.high = float(numbers.min()), float(numbers.max())
        return col
    if numbers is None and DATE_NAME.search(key):
        parsed = pd.to_datetime(nonnull.astype(str), errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.95:
            col.role = "date"
            return col
    if distinct > MAX_CATEGORIES:
        col.warnings.append(f"has {distinct} distinct values: free text or an id? (ignored)")
        return col
    col.role = "categorical"
    counts = text.value_counts()
    col.counts = [(str(k), int(v)) for k, v in counts.items()]
    if numbers is not None:
        col.notes.append("numeric codes read as categories (make it numeric if it counts)")
    return col


def draft_spec(path: Path, target: str, name: str | None = None) -> Draft:
    """Profile a data file and draft its spec; SpecError when the target does not fit."""
    df = read_data(path)
    if target not in df.columns:
        raise SpecError(f"no column {target!r} in {path} (columns: "
                        f"{', '.join(map(str, df.columns[:20]))})")
    y = df[target]
    positive = _scalar(_positive(y.dropna()))
    is_default = (as_text(y) == category_text(positive)).to_numpy()
    labelled = y.notna().to_numpy()
    columns: list[ColumnDraft] = []
    for col_name in df.columns:
        name_ = str(col_name)
        if name_ == target:
            col = ColumnDraft(name_, "target", float(y.isna().mean()))
            if col.missing:
                col.warnings.append(f"target missing in {col.missing:.1%} of rows")
            columns.append(col)
            continue
        col = profile_column(name_, df[col_name], len(df))
        if col.role in ("numeric", "categorical") and LEAK_NAME.search(snake(name_)):
            col.role = "ignored"
            col.warnings.append("looks known only after the outcome (by its name): a leak?")
        elif col.role in ("numeric", "categorical"):
            sep = separation(df[col_name][labelled], is_default[labelled],
                             col.role == "categorical")
            if sep > SEPARATES:
                col.role = "ignored"
                col.warnings.append(f"alone separates the target (ROC-AUC {sep:.3f}): known "
                                    "only after the outcome?")
        columns.append(col)
    ids = [c.name for c in columns if c.role == "id"]
    stem = snake(path.stem) or "dataset"
    fmt = "parquet" if path.suffix.lower() == ".parquet" else "csv"
    return Draft(name or stem, str(path.resolve()), fmt, len(df), target, positive,
                 ids[0] if ids else None, columns)


def _key(name: str) -> str:
    """A YAML mapping key: plain when safe, else quoted."""
    plain = PLAIN_KEY.fullmatch(name) and name.lower() not in ("null", "true", "false", "y", "n")
    return name if plain else json.dumps(name)


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(x)


def _column_yaml(c: ColumnDraft) -> list[str]:
    head = f"  {_key(c.name)}:"
    facts = [f"missing {c.missing:.1%}"] if c.missing else []
    if c.low is not None and c.high is not None:
        facts.insert(0, f"observed {_number(c.low)} .. {_number(c.high)}")
    if c.counts:
        facts.insert(0, f"{len(c.counts)} categories")
    lines = [head + (f"  # {', '.join(facts)}" if facts else "")]
    lines += [f"    # WARNING: {w}" for w in c.warnings]
    lines += [f"    # {n}" for n in c.notes]
    lines.append(f"    role: {c.role}")
    if c.integer:
        lines.append("    integer: true")
    if c.protected and c.role in ("numeric", "categorical"):
        lines.append("    protected: true  # kept out of the features, kept for fairness")
    if c.missing and c.role in ("numeric", "categorical"):
        lines.append(f"    max_null_rate: {min(1.0, math.ceil(c.missing * 100 + 1) / 100):g}")
    if c.counts:
        lines.append("    # categories (uncomment to fix them; the count in the file after #):")
        lines.append("    # categories:")
        lines += [f"    #   - {json.dumps(v, ensure_ascii=False)}  # {n}"
                  for v, n in c.counts[:SHOWN_CATEGORIES]]
        if len(c.counts) > SHOWN_CATEGORIES:
            lines.append(f"    #   ... {len(c.counts) - SHOWN_CATEGORIES} more")
    return lines


def draft_yaml(draft: Draft) -> str:
    """The draft as a YAML 1.2 spec file, with its findings as comments."""
    positive = draft.positive
    shown = json.dumps(positive if isinstance(positive, str | bool | int | float)
                       else str(positive))
    lines = [f"# Draft spec from {Path(draft.source).name} ({draft.rows} rows), written by "
             "`credit-risk spec init`.",
             "# Check each column's role, then: credit-risk spec check THIS_FILE DATA"]
    if draft.warnings:
        lines.append("# Warnings (those columns are `ignored` below; change it if they are not):")
        lines += [f"#   - {w}" for w in draft.warnings]
    table = "applications"
    key = f", key: {_key(draft.key)}" if draft.key else ""
    lines += [
        f"name: {json.dumps(draft.name)}",
        f"description: {json.dumps(f'Drafted from {Path(draft.source).name}.')}",
        "tables:",
        f"  {table}: {{source: {json.dumps(draft.source)}, format: {draft.file_format}{key}}}",
        f"base: {table}",
        f"target: {{column: {_key(draft.target)}, positive: {shown}}}"
        "  # the value that means default",
        "columns:",
    ]
    for c in draft.columns:
        lines += _column_yaml(c)
    return "\n".join(lines) + "\n"
