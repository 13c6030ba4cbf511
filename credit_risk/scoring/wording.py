"""The words of a reason: `Age (1 year) raises the risk`, for a whole batch at a time.

Everything that does not depend on the applicant is worked out once per model version: each
feature's label and unit (its phrase, `_phrase`), the labels of a derived feature's inputs,
what counts as not given (missing, or a value that means missing). A batch's reasons are then
worded per feature, not per row: each distinct value of a feature is worded once and looked up
for every other row that has it (integer-valued inputs such as ages, counts and months repeat a
lot); numbers all given (the usual batch) are checked at once, not value by value. One
application's reasons are worded directly (`given_one`, `derived_one`): the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from credit_risk.scoring.features import FeaturePlan
from credit_risk.tables import label_of, singular

RAISES = "raises the risk"
Column = Callable[[str, list[int]], list[Any]]  # (field, rows) -> the field's values there


class Wording:
    """Reason texts of one model version's features (feature groups: one-hot columns summed)."""

    def __init__(self, features: FeaturePlan, groups: Sequence[str], labels: Mapping[str, str],
                 units: Mapping[str, str | None]):
        self.features = features
        self.labels = {g: labels.get(g) or label_of(g) for g in groups}
        self._labels_in = {**labels}  # derived features' inputs are named by their labels too
        self.units = {g: units.get(g) or "" for g in groups}
        self.inputs = {g: features.derived_inputs.get(g, (g,)) for g in groups}
        self._phrases = {g: _phrase(self.labels[g], self.units[g]) for g in groups}

    def text(self, group: str, value: Any, absent: Sequence[str] = ()) -> str:
        """`Age (1 year) raises the risk`; a value the applicant did not give (scored as the
        typical one) is `not provided`, never the number that stood in for it."""
        label = self.labels[group]
        if absent:
            inputs = [self._label_of_input(n) for n in absent if n != group]
            said = f"{', '.join(inputs)} not provided" if inputs else "not provided"
            return f"{label} ({said}) {RAISES}"
        if value is None:
            return f"{label} {RAISES}"
        return self._phrases[group](value)

    def _label_of_input(self, name: str) -> str:
        label = self._labels_in.get(name) or label_of(name)
        return label if label[1:2].isupper() else label[:1].lower() + label[1:]

    def given_one(self, group: str, value: Any) -> tuple[Any, str]:
        """(value shown, text) of an input feature's value as sent: a value not given is
        shown as None and worded `not provided`."""
        if self.features.is_absent(group, value):
            return None, self.text(group, None, (group,))
        return value, self._phrases[group](value)

    def given(self, group: str, values: list[Any]) -> list[tuple[Any, str]]:
        """`given_one` of each of `values` (as sent), each distinct value once (its words
        bound to the feature once: a batch words many)."""
        absent, phrase = self.features.is_absent, self._phrases[group]
        not_given = None, self.text(group, None, (group,))

        def words(distinct: list[Any]) -> list[tuple[Any, str]]:
            if self.features.none_absent(group, distinct):  # numbers, all given: at once
                return list(zip(distinct, map(phrase, distinct), strict=True))
            return [not_given if absent(group, v) else (v, phrase(v)) for v in distinct]

        return _memo(words, values)

    def derived_one(self, group: str, value: float, record: Mapping[str, Any]
                    ) -> tuple[Any, str]:
        """`derived` of one application (`record`: its values as sent)."""
        is_absent = self.features.is_absent
        absent = tuple(n for n in self.inputs[group] if is_absent(n, record.get(n)))
        if absent:
            return None, self.text(group, None, absent)
        return value, self._phrases[group](value)

    def derived(self, group: str, values: list[float], inputs: Sequence[list[Any]]
                ) -> list[tuple[Any, str]]:
        """(value shown, text) of a derived feature: its value as scored (`values`), or, when
        some of its inputs (`inputs`: each input's values as sent) were not given, None and
        `<those inputs> not provided`."""
        names = self.inputs[group]
        phrase = self._phrases[group]

        def words(distinct: list[float]) -> list[tuple[Any, str]]:
            return list(zip(distinct, map(phrase, distinct), strict=True))

        none_absent, is_absent = self.features.none_absent, self.features.is_absent
        if all(none_absent(n, column) for n, column in zip(names, inputs, strict=True)):
            return _memo(words, values)  # every input given: the usual batch
        flags = [_memo(_each(partial(is_absent, n)), column)
                 for n, column in zip(names, inputs, strict=True)]
        if not any(map(any, flags)):
            return _memo(words, values)
        seen: dict[Any, tuple[Any, str]] = {}
        said = []
        for v, *absent in zip(values, *flags, strict=True):
            key = tuple(n for n, f in zip(names, absent, strict=True) if f) if any(absent) else v
            hit = seen.get(key)
            if hit is None:
                hit = seen[key] = (None, self.text(group, None, key)) if any(absent) else \
                    (v, phrase(v))
            said.append(hit)
        return said


def _each(fn: Callable[[Any], Any]) -> Callable[[list[Any]], list[Any]]:
    """`fn` of each value of a list."""
    return lambda values: list(map(fn, values))


def _memo(fn: Callable[[list[Any]], list[Any]], values: list[Any]) -> list[Any]:
    """The results of `fn` (of a list of values: a list of as many results) for each value,
    `fn` given each distinct value once (the first of equal values; True and 1 apart: equal
    as keys, not in words); with an unhashable value among them, given all the values."""
    try:
        if bool not in set(map(type, values)):  # the usual batch: the values are the keys
            distinct = list(dict.fromkeys(values))  # keeps the first of equal keys
            memo = dict(zip(distinct, fn(distinct), strict=True))
            return list(map(memo.__getitem__, values))
        firsts: dict[Any, Any] = {}
        for v in values:
            firsts.setdefault((bool, v) if type(v) is bool else v, v)
        memo = dict(zip(firsts, fn(list(firsts.values())), strict=True))
        return [memo[(bool, v) if type(v) is bool else v] for v in values]
    except TypeError:
        return fn(values)


def _phrase(label: str, unit: str) -> Callable[[Any], str]:
    """The text of a value given: `f"{label} ({quantity(value, unit)}) {RAISES}"`, the unit's
    words bound once and a float or an int (a batch's usual values) formatted here."""
    head = f"{label} ("
    if not unit:
        many = one = f") {RAISES}"
    elif unit.startswith("%"):
        many = one = f"{unit}) {RAISES}"
    else:
        many, one = f" {unit}) {RAISES}", f" {singular(unit)}) {RAISES}"

    def phrase(value: Any) -> str:
        kind = type(value)
        if kind is float:
            number = f"{int(value):,}" if value.is_integer() else f"{value:,.2f}"
        elif kind is int and -1e300 < value < 1e300:  # as a float: an integer, no overflow
            number = f"{value:,}"
        else:
            return f"{head}{quantity(value, unit)}) {RAISES}"
        return f"{head}{number}{one if abs(value) == 1 else many}"

    return phrase


def quantity(value: Any, unit: str) -> str:
    """A value with its unit: `95%`, `3% of disposable income`, `1 year`, `2 years`,
    `1,200,000 INR`, `0.42`."""
    if type(value) is float:  # the common case first
        number = f"{int(value):,}" if value.is_integer() else f"{value:,.2f}"
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    else:
        number = f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
    if not unit:
        return number
    if unit.startswith("%"):
        return f"{number}{unit}"
    return f"{number} {singular(unit) if abs(value) == 1 else unit}"
