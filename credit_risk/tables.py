"""Text for people: plain-text tables for the CLI and task logs, labels made from column
names, units in the singular (no dependencies: the serving slice uses it)."""

from __future__ import annotations

import re
from typing import Any


def text_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A header, a rule, one line per row; floats to four decimals."""
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])

# An acronym (before a capitalised word, a digit, an underscore or the end), a word, a number.
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|_|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+")


def label_of(name: str) -> str:
    """`UrbanRural` -> "Urban rural", `loan_to_income` -> "Loan to income", `ApprovalFY` ->
    "Approval FY": words split at case changes, digits and underscores; acronyms kept."""
    words = _WORDS.findall(name)
    if not words:
        return name
    shown = [w if len(w) > 1 and w.isupper() else w.lower() for w in words]
    return " ".join([shown[0][:1].upper() + shown[0][1:], *shown[1:]])


def singular(unit: str) -> str:
    """A plural unit word for a quantity of one: years -> year, enquiries -> enquiry; codes
    (INR, USD) and symbols unchanged."""
    if not unit.isalpha() or not unit.islower() or not unit.endswith("s") or unit.endswith("ss"):
        return unit
    return unit[:-3] + "y" if unit.endswith("ies") else unit[:-1]
