"""A call's decision records checked once per call (`check_decisions`, `decision_lines`): the
same records accepted and refused, and the same lines written, as `decision` and `dumps_line`
row by row; the JSONL log refuses a bad record whole with DecisionLogError."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from credit_risk.records.decisions import (
    DecisionLogError,
    JsonlDecisionLog,
    check_decisions,
    decision,
    decision_lines,
)
from credit_risk.records.jsonl import dumps_line, dumps_lines, loads_line

pytestmark = [pytest.mark.unit]

AT = "2026-12-07T02:30:00.123456+00:00"


class Text(str):
    pass


class Code(enum.StrEnum):
    AGE = "age"


def _result(k: int) -> dict[str, Any]:
    """A result as the scorer gives it."""
    return {"probability_of_default": 0.01 * k, "risk": "Low", "credit_score": 700 + k,
            "rating": "Good", "grade": "3",
            "reasons": [{"feature": "age", "label": "Age", "value": 30 + k, "impact": 0.2,
                         "text": "Age 30"}],
            "model_version": "v1", "warnings": []}


def _inputs(k: int) -> dict[str, Any]:
    return {"age": 30 + k, "income": 1000.5 * k, "loan_purpose": "Home", "loan_tenure": None}


def _rows(n: int = 5) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [_inputs(k) for k in range(n)], [_result(k) for k in range(n)]


def _changed(where: str, k: int, change: Callable[[dict[str, Any]], Any]):
    inputs, results = _rows()
    change((inputs if where == "inputs" else results)[k])
    return inputs, results


# (name, inputs, results): rows alike, and rows each unlike the others in one way
CASES = [
    ("scorer's rows", *_rows()),
    ("one row", *_rows(1)),
    ("no rows", [], []),
    ("a bad PD in row 3", *_changed("results", 3, lambda r: r.update(
        probability_of_default="high"))),
    ("a fractional score in row 1", *_changed("results", 1, lambda r: r.update(
        credit_score=700.5))),
    ("a whole float score", *_changed("results", 2, lambda r: r.update(credit_score=700.0))),
    ("a boolean score", *_changed("results", 2, lambda r: r.update(credit_score=True))),
    ("an int PD", *_changed("results", 4, lambda r: r.update(probability_of_default=0))),
    ("a NaN PD", *_changed("results", 4, lambda r: r.update(
        probability_of_default=float("nan")))),
    ("a NumPy PD", *_changed("results", 1, lambda r: r.update(
        probability_of_default=np.float64(0.25)))),
    ("a NumPy score", *_changed("results", 1, lambda r: r.update(credit_score=np.int64(650)))),
    ("a number as rating", *_changed("results", 2, lambda r: r.update(rating=3))),
    ("a missing rating", *_changed("results", 2, lambda r: r.pop("rating"))),
    ("a result's own at", *_changed("results", 2, lambda r: r.update(at="yesterday"))),
    ("a result's own good at", *_changed("results", 2, lambda r: r.update(at=AT))),
    ("a result's empty request id", *_changed("results", 1, lambda r: r.update(
        request_id=""))),
    ("a result's own inputs", *_changed("results", 3, lambda r: r.update(inputs=[1]))),
    ("an extra result key", *_changed("results", 3, lambda r: r.update(note="x"))),
    ("an int result key", *_changed("results", 3, lambda r: r.update({7: "x"}))),
    ("a str subclass result key", *_changed("results", 3, lambda r: r.update(
        {Text("note"): "x"}))),
    ("an int key inside a reason", *_changed("results", 2, lambda r: r["reasons"][0].update(
        {3: "x"}))),
    ("a NumPy value inside a reason", *_changed("results", 2, lambda r: r["reasons"][0].update(
        impact=np.float32(0.5)))),
    ("an int input key", *_changed("inputs", 4, lambda i: i.update({5: 1}))),
    ("a str subclass input key", *_changed("inputs", 1, lambda i: i.update({Text("x"): 1}))),
    ("an enum input key", *_changed("inputs", 1, lambda i: i.update({Code.AGE: 1}))),
    ("a bytes input key", *_changed("inputs", 1, lambda i: i.update({b"x": 1}))),
    ("other input keys", *_changed("inputs", 1, lambda i: i.pop("age"))),
    ("a NumPy input", *_changed("inputs", 0, lambda i: i.update(age=np.int64(41)))),
    ("a set input", *_changed("inputs", 0, lambda i: i.update(age={1}))),
    ("a big int input", *_changed("inputs", 0, lambda i: i.update(age=2 ** 70))),
    ("an application id", *_changed("inputs", 2, lambda i: i.update(application_id="L1"))),
]
# rows that are not dicts
CASES += [("a list as inputs", [*_rows()[0][:4], [("age", 1)]], _rows()[1]),
          ("a list as result", _rows()[0], [*_rows()[1][:4], [("rating", "A")]])]


def _one_by_one(at: Any, rid: str, inputs: list, results: list) -> bytes:
    """What the log wrote before: each row checked by `decision`, then its line."""
    return b"".join(dumps_line(decision(at, rid, i, r))
                    for i, r in zip(inputs, results, strict=True))


def _check_one_by_one(at: Any, rid: str, inputs: list, results: list) -> None:
    for i, r in zip(inputs, results, strict=True):
        decision(at, rid, i, r)


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except ValidationError as exc:
        return "refused", (exc.errors()[0]["loc"], exc.errors()[0]["msg"])
    except TypeError:
        return "not JSON", None


@pytest.mark.parametrize(("name", "inputs", "results"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("at", [AT, "2026-12-07T02:30:00"], ids=["aware", "naive"])
@pytest.mark.parametrize("rid", ["req-1", ""], ids=["id", "empty id"])
def test_a_call_is_accepted_refused_and_written_as_row_by_row(name, inputs, results, at, rid):
    before = _outcome(lambda: _one_by_one(at, rid, inputs, results))
    assert _outcome(lambda: decision_lines(at, rid, inputs, results)) == before
    assert _outcome(lambda: check_decisions(at, rid, inputs, results)) == \
        _outcome(lambda: _check_one_by_one(at, rid, inputs, results))


def test_the_shape_of_the_rows_decides_the_fast_path_not_the_answer():
    """Rows alike are checked once: a bad `at` or id still refused, naming the field."""
    inputs, results = _rows(50)
    assert decision_lines(AT, "r", inputs, results) == _one_by_one(AT, "r", inputs, results)
    with pytest.raises(ValidationError, match="request_id"):
        decision_lines(AT, "", inputs, results)
    with pytest.raises(ValidationError, match="timezone"):
        decision_lines("2026-12-07T02:30:00", "r", inputs, results)


def test_other_records_of_the_rows_are_written_as_given():
    """The spool's records ({decision_id, ..., inputs, result}) from the same check."""
    inputs, results = _rows()
    records = [{"decision_id": f"c-{k}", "at": AT, "request_id": "r", "inputs": i, "result": r}
               for k, (i, r) in enumerate(zip(inputs, results, strict=True))]
    assert decision_lines(AT, "r", inputs, results, records) == b"".join(map(dumps_line, records))
    results[2]["credit_score"] = "high"
    with pytest.raises(ValidationError, match="credit_score"):
        decision_lines(AT, "r", inputs, results, records)


def test_unequal_inputs_and_results_are_an_error():
    inputs, results = _rows()
    with pytest.raises(ValueError, match="4 inputs for 5 results"):
        decision_lines(AT, "r", inputs[:4], results)
    with pytest.raises(ValueError, match="4 inputs for 5 results"):
        check_decisions(AT, "r", inputs[:4], results)


def test_lines_without_options_only_where_they_change_nothing():
    records = [{"a": 1, "b": [1.5, None, "x"]}, {"a": np.float64(2.5)}, {1: "x"},
               {"t": datetime(2026, 1, 1, tzinfo=UTC)}, {"s": {1, 2}}]
    for k in range(len(records)):
        assert dumps_lines(records[k:k + 2]) == b"".join(map(dumps_line, records[k:k + 2]))


def test_the_log_refuses_a_call_with_a_bad_record_whole(tmp_path):
    dlog = JsonlDecisionLog(tmp_path / "d.jsonl")
    inputs, results = _rows(20)
    dlog.write("good", inputs, results)
    results[13]["probability_of_default"] = "high"
    with pytest.raises(DecisionLogError, match="not a decision record.*probability_of_default"):
        dlog.write("bad", inputs, results)
    with pytest.raises(DecisionLogError, match="not a decision record.*request_id"):
        dlog.write("", *_rows(3))
    lines = (tmp_path / "d.jsonl").read_bytes().splitlines()
    assert len(lines) == 20
    back = [loads_line(line) for line in lines]
    assert [r["request_id"] for r in back] == ["good"] * 20
    good_inputs, good_results = _rows(20)
    assert [{k: v for k, v in r.items() if k not in ("at", "request_id")} for r in back] == \
        [{"inputs": i, **r} for i, r in zip(good_inputs, good_results, strict=True)]
    assert dlog.read() == back


def test_decide_records_applications_that_are_not_dicts_as_dicts(tmp_path):
    from types import MappingProxyType

    from credit_risk.scoring.decide import decide

    class Scorer:
        def score_records(self, records):
            return [_result(k) for k in range(len(records))]

    dlog = JsonlDecisionLog(tmp_path / "d.jsonl")
    apps = [MappingProxyType(_inputs(0)), _inputs(1)]
    assert decide(Scorer(), apps, dlog, "r") == [_result(0), _result(1)]  # type: ignore[arg-type]
    assert [d["inputs"] for d in dlog.read()] == [_inputs(0), _inputs(1)]


def test_the_shipper_reads_spooled_calls_as_line_by_line():
    """Spool lines of several calls (as the spool writes them) to the staging table's rows:
    the same as line by line; a line that is not a decision refused the same way."""
    from credit_risk.records.shipper import _row
    from credit_risk.records.shipper import _rows as spooled_rows

    lines = []
    for call, rid in enumerate(["r1", "r2", "r2"]):
        inputs, results = _rows(4)
        records = [{"decision_id": f"c{call}-{k}", "at": AT, "request_id": rid, "inputs": i,
                    "result": r} for k, (i, r) in enumerate(zip(inputs, results, strict=True))]
        lines += decision_lines(AT, rid, inputs, results, records).splitlines()
    assert spooled_rows(lines) == [_row(line) for line in lines]
    bad = loads_line(lines[6])
    bad["result"]["credit_score"] = "high"
    lines[6] = dumps_line(bad).rstrip(b"\n")
    with pytest.raises(ValidationError, match="credit_score"):
        spooled_rows(lines)
    with pytest.raises(KeyError):
        spooled_rows([*lines[:3], b'{"at": "x"}'])


def test_a_result_field_with_a_constraint_cannot_take_the_type_only_path():
    """Rows after a call's first are checked by type alone: a constraint on a result field
    must stop the module, not go unchecked."""
    from pydantic import Field, field_validator

    from credit_risk.records.decisions import Decision, result_types

    assert "probability_of_default" in result_types(Decision)

    class Bounded(Decision):
        probability_of_default: float | None = Field(default=None, ge=0, le=1)

    class Checked(Decision):
        @field_validator("rating")
        @classmethod
        def known(cls, v: str | None) -> str | None:
            return v

    for model in (Bounded, Checked):
        with pytest.raises(TypeError, match="may only have types"):
            result_types(model)
