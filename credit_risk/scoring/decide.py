"""A decision: score validated applications, record them, then count them; the one path the
API, the web form and `credit-risk predict` take."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from credit_risk.scoring.scorer import Scorer

Results = list[dict[str, Any]]


class DecisionLog(Protocol):
    """Where decisions are recorded (credit_risk's decision logs: a JSONL file, PostgreSQL)."""

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None: ...


def decide(scorer: Scorer, applications: Sequence[Mapping[str, Any]],
           log: DecisionLog | None, request_id: str,
           on_decided: Callable[[Results], None] | None = None) -> Results:
    """The results of validated applications, each recorded in the decision log (whole, in
    one write) before it is returned: when the log cannot be written, DecisionLogError and
    no result (fail closed). `on_decided` (e.g. metrics) sees only recorded decisions."""
    results = scorer.score_records(applications)
    if log is not None and results:
        log.write(request_id, _dicts(applications), results)
    if on_decided is not None:
        on_decided(results)
    return results


def _dicts(applications: Sequence[Mapping[str, Any]]) -> Sequence[dict[str, Any]]:
    """The applications as dicts, as the log records them: copied only when some are not."""
    if set(map(type, applications)) == {dict}:
        return cast(Sequence[dict[str, Any]], applications)
    return [dict(a) for a in applications]
