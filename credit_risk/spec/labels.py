"""Labels people read, made from column names when the spec gives none (`label:`)."""

from __future__ import annotations

import re

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
