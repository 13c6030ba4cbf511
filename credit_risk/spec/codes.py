"""Category values as text: numeric codes (1, 1.0, "1", "1.0") are one category, "1"."""

from __future__ import annotations

import math
import re
from typing import Any

# Text of a whole number written with a zero fraction ("1.0", "-2.00"): the code "1", "-2".
# Leading zeros stay ("01" is not "1": postcodes and industry codes keep them).
_ZERO_FRACTION = re.compile(r"([+-]?\d+)\.0*", re.ASCII)


class BooleanCategoryError(ValueError):
    """A boolean where a category is expected (YAML `true`, JSON `true`)."""

    def __init__(self, value: bool):
        super().__init__(f"{str(value).lower()} is a boolean, not a category: quote it "
                         f"('{str(value).lower()}') if it is a category's text")


def category_text(value: Any) -> str:
    """The category a raw value names: text stripped, a whole number as its digits
    (1, 1.0, "1.0" and "1" are "1"), another number as Python writes it (1.5 -> "1.5")."""
    if isinstance(value, bool):
        return str(value)  # a data file's boolean column keeps its True/False categories
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)
    if hasattr(value, "item") and not isinstance(value, str):  # a NumPy scalar
        return category_text(value.item())
    text = str(value).strip()
    whole = _ZERO_FRACTION.fullmatch(text)
    if whole:
        return str(int(whole.group(1)))
    return text


def spec_category(value: Any) -> str:
    """A category as a spec file writes it: text or a number, never a boolean."""
    if isinstance(value, bool):
        raise BooleanCategoryError(value)
    if not isinstance(value, str | int | float):
        raise ValueError(f"a category is text or a number, not {type(value).__name__}")
    return category_text(value)
