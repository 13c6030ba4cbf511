"""The decision log: one record per scored application (inputs, PD, score, model version).

`DecisionLog` is the interface, `Decision` the record every backend writes and reads back
(validated both ways), `JsonlDecisionLog` the embedded default: one JSON line per decision in a
local file, a call's decisions appended whole or not at all. A batch (`credit-risk predict
--log`) is one record plus its rows compressed (`credit_risk.records.batches`); reads give its
rows as decisions, retention deletes them with their record. The PostgreSQL backend is in
`decisions_pg`; `backends.open_decision_log` opens the one a setting names.

Fail closed: a write that fails raises `DecisionLogError`, so the caller never returns a decision
without its audit record. Reads are windowed (`iter_chunks(since, until)`: lists of at most
`chunk_rows` records, never the whole log in memory; `columns=` cuts each record to the keys a
reader uses); `prune(before)` enforces retention.
"""

from __future__ import annotations

import logging
import threading
import time
import typing
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain, repeat
from operator import contains
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from credit_risk.errors import CreditRiskError
from credit_risk.records.jsonl import (
    JsonlFile,
    dumps_line,
    dumps_lines,
    loads_line,
    plain_lines,
    why,
)

if TYPE_CHECKING:
    from credit_risk.records.batches import Batch, BatchRows

log = logging.getLogger(__name__)

CHUNK_ROWS = 10_000


class DecisionLogError(CreditRiskError, RuntimeError):
    """The decisions could not be logged (nothing of them was kept): do not return them."""


class Decision(BaseModel):
    """One logged decision: when, which request, the inputs as validated, and the answer (the
    result's keys beside these: reasons, warnings, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    at: AwareDatetime
    request_id: str = Field(min_length=1)
    inputs: dict[str, Any]
    model_version: str | None = None
    probability_of_default: float | None = None
    credit_score: int | None = None
    rating: str | None = None
    risk: str | None = None


def decision(at: datetime | str, request_id: str, inputs: dict[str, Any],
             result: dict[str, Any]) -> dict[str, Any]:
    """One decision as every backend reads it back: {"at", "request_id", "inputs", **result},
    `at` in ISO 8601; ValidationError when it is not a `Decision`."""
    record = {"at": at if isinstance(at, str) else at.isoformat(), "request_id": request_id,
              "inputs": inputs, **result}
    Decision.model_validate(record)
    return record


# A record's keys that are the call's, not a result's: a result holding one of them is checked
# row by row (it would replace the call's value).
_CALL_KEYS = frozenset({"at", "request_id", "inputs"})


def result_types(model: type[BaseModel]) -> dict[str, frozenset[Any]]:
    """A result's fields of `model` (`Decision`) and the types of the values it takes as they
    are. Rows after a call's first are checked by these types alone, so a result field with a
    constraint or a validator of its own is a TypeError here, not a gap there."""
    types = {name: frozenset(typing.get_args(f.annotation) or (f.annotation,))
             for name, f in model.model_fields.items() if name not in _CALL_KEYS}
    decorators = model.__pydantic_decorators__
    if any(model.model_fields[name].metadata for name in types) \
            or decorators.field_validators or decorators.model_validators:
        raise TypeError(f"{model.__name__}'s result fields may only have types: rows after a "
                        "call's first are checked by type alone (check_decisions)")
    return types


_RESULT_TYPES = result_types(Decision)


def check_decisions(at: datetime | str, request_id: str, inputs: Sequence[dict[str, Any]],
                    results: Sequence[dict[str, Any]]) -> None:
    """ValidationError, for the first row refused, unless `decision` accepts every (inputs,
    result) of one call. One pydantic validation per call when the rows are shaped alike (the
    scorer's are: `_alike`, `_string_keys`), else one per row."""
    _same_length(inputs, results)
    if results and _alike(inputs, results) and _string_keys(inputs, results):
        decision(at, request_id, inputs[0], results[0])  # the call's `at` and id, and row 0
        return
    for i, r in zip(inputs, results, strict=True):
        decision(at, request_id, i, r)


def decision_lines(at: str, request_id: str, inputs: Sequence[dict[str, Any]],
                   results: Sequence[dict[str, Any]],
                   records: list[dict[str, Any]] | None = None) -> bytes:
    """The JSON lines of one call's decisions (`records`, each holding its row's inputs and
    result whole; by default the records of `decision`), once `check_decisions` would pass:
    ValidationError for the first row refused. The JSON of alike rows (`_alike`) is written
    without `dumps_line`'s options, which fails unless every key is a string: then no row is
    checked on its own."""
    _same_length(inputs, results)
    if results and _alike(inputs, results):
        records = _records(at, request_id, inputs, results) if records is None else records
        try:
            lines = plain_lines(records)
        except TypeError:
            pass
        else:
            decision(at, request_id, inputs[0], results[0])
            return lines
    for i, r in zip(inputs, results, strict=True):
        decision(at, request_id, i, r)
    return dumps_lines(_records(at, request_id, inputs, results) if records is None else records)


def _records(at: str, request_id: str, inputs: Sequence[dict[str, Any]],
             results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"at": at, "request_id": request_id, "inputs": i, **r}
            for i, r in zip(inputs, results, strict=True)]


def _same_length(inputs: Sequence[Any], results: Sequence[Any]) -> None:
    if len(inputs) != len(results):
        raise ValueError(f"{len(inputs)} inputs for {len(results)} results")


def _alike(inputs: Sequence[Any], results: Sequence[Any]) -> bool:
    """Whether every row is a `Decision` when the first is, provided all their keys are
    strings: all inputs and results dicts, no result holding a key of the call's, the values of
    `Decision`'s fields of exactly the types it names (nothing to convert). Column by column."""
    if set(map(type, results)) != {dict} or set(map(type, inputs)) != {dict}:
        return False
    if any(any(map(contains, results, repeat(key))) for key in _CALL_KEYS):
        return False
    return all(set(map(type, map(dict.get, results, repeat(name)))) <= types
               for name, types in _RESULT_TYPES.items())


def _string_keys(inputs: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]) -> bool:
    """Whether every key of the inputs and results is a `str`."""
    return set(map(type, chain(chain.from_iterable(inputs),
                               chain.from_iterable(results)))) <= {str}


class Health:
    """A backend's state for `/ready` and the metrics: `failing` (the last write or check
    failed), `failures` (count), `last_error` (why, without credentials)."""

    def __init__(self) -> None:
        self.failures = 0
        self.failing = False
        self.last_error: str | None = None

    def failed(self, why_: str, *, count: bool = True) -> None:
        self.failures += count
        self.failing = True
        self.last_error = why_


class DecisionLog:
    """Where decisions are recorded; the backends subclass it."""

    probe_interval_s = 1.0  # while failing, `ok()` checks the backend at most this often

    def __init__(self) -> None:
        self.health = Health()

    @property
    def failing(self) -> bool:
        return self.health.failing

    @property
    def failures(self) -> int:
        return self.health.failures

    @property
    def last_error(self) -> str | None:
        return self.health.last_error

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Record one decision per (inputs, result), all of them durably before returning,
        or none: DecisionLogError."""
        raise NotImplementedError

    def write_batch(self, rows: BatchRows, batch: Batch) -> Batch:
        """Record a batch (`credit_risk.records.batches`): its record and its compressed rows,
        both durably, or neither (DecisionLogError). The record as stored."""
        raise NotImplementedError

    def ok(self, min_interval_s: float | None = None) -> bool:
        """Whether decisions can be recorded; while failing, re-checked at most once per
        `min_interval_s` (default `probe_interval_s`) without recording anything."""
        raise NotImplementedError

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    model_versions: Collection[str] | None = None,
                    chunk_rows: int = CHUNK_ROWS,
                    columns: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """The decisions recorded in [since, until) (by versions in `model_versions`, if
        given), in lists of at most `chunk_rows`, oldest first.

        `columns`: only these keys of each record, in this order (None for a key the record
        lacks), e.g. `("inputs", "model_version")` for drift."""
        raise NotImplementedError

    def prune(self, before: datetime) -> int:
        """Delete the decisions recorded before `before`; the number deleted."""
        raise NotImplementedError

    def count(self, since: datetime | None = None, until: datetime | None = None) -> int:
        """How many decisions were recorded in [since, until)."""
        return sum(len(chunk) for chunk in self.iter_chunks(since, until))

    def migrate(self) -> str | None:
        """Create or upgrade the storage (a database schema); the schema revision, if any."""
        return None

    def describe(self) -> str:
        """Where the decisions go (no credentials)."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """What `/ready` shows beyond ok and the failures (a spool's backlog)."""
        return {}

    def close(self) -> None:
        """Release connections and threads (pending writes are finished first)."""

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> list[dict[str, Any]]:
        """All decisions of a window as one list: for small windows and tests."""
        return [r for chunk in self.iter_chunks(since, until) for r in chunk]

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def columns_of(columns: Sequence[str] | None) -> tuple[str, ...] | None:
    """The record keys an `iter_chunks(columns=...)` asked for (None: whole records)."""
    if columns is None:
        return None
    if isinstance(columns, str):  # ("inputs") is a string, not one column
        raise TypeError("columns: a sequence of record keys, not a string")
    keys = tuple(dict.fromkeys(columns))
    if not all(isinstance(k, str) and k for k in keys):
        raise TypeError(f"columns: record keys are non-empty strings, not {columns!r}")
    return keys


def aware(t: datetime | None) -> datetime | None:
    """Naive times are UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class JsonlDecisionLog(DecisionLog):
    """JSON lines appended whole under an exclusive lock, so several workers can share one
    file. Not fsynced: a power loss can drop the last acknowledged lines."""

    def __init__(self, path: Path | str):
        super().__init__()
        self.file = JsonlFile(path)
        self.path = self.file.path
        self._lock = threading.Lock()
        self._last_probe = 0.0

    def describe(self) -> str:
        return str(self.path)

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Append one line per decision, all of them or none; DecisionLogError if none."""
        now = datetime.now(UTC).isoformat()
        try:
            lines = decision_lines(now, request_id, inputs, results)
        except ValidationError as exc:
            raise DecisionLogError(f"decision log {self.path}: not a decision record: "
                                   f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
        with self._lock:
            try:
                self.file.append(lines)
            except OSError as exc:
                self.health.failed(why(exc))
                log.error("decision log %s cannot be written: %s", self.path, self.last_error)
                raise DecisionLogError(f"decision log {self.path}: {why(exc)}") from exc
            self.health.failing = False

    def write_batch(self, rows: BatchRows, batch: Batch) -> Batch:
        """The rows into their side file (`batches.SideFiles`), then the record as one line
        ({"batch": {...}}); when the line cannot be appended, the side file is removed."""
        from credit_risk.records.batches import SideFiles

        files = SideFiles(self.path)
        try:
            stored = files.store(rows, batch)
        except OSError as exc:
            self.health.failed(why(exc))
            raise DecisionLogError(f"decision log {self.path}: batch rows: {why(exc)}") from exc
        line = dumps_line({"batch": stored.model_dump(mode="json")})
        with self._lock:
            try:
                self.file.append(line)
            except OSError as exc:
                files.remove([stored.file or ""])
                self.health.failed(why(exc))
                raise DecisionLogError(f"decision log {self.path}: {why(exc)}") from exc
            self.health.failing = False
        return stored

    def ok(self, min_interval_s: float | None = None) -> bool:
        """While failing, at most once per `min_interval_s`: the log opens for appending and
        a few KB fit beside it (nothing is added to it)."""
        if not self.failing:
            return True
        interval = self.probe_interval_s if min_interval_s is None else min_interval_s
        with self._lock:
            now = time.monotonic()
            if now - self._last_probe < interval:
                return not self.failing
            self._last_probe = now
            try:
                self.file.probe()
            except OSError as exc:
                self.health.last_error = why(exc)
                return False
            self.health.failing = False
            log.info("decision log %s is writable again", self.path)
            return True

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    model_versions: Collection[str] | None = None,
                    chunk_rows: int = CHUNK_ROWS,
                    columns: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Streams the file once; a line that is not a `Decision` is skipped with a warning.
        With `columns`, each line is still parsed and checked whole, then cut to those keys.
        A batch line gives its rows in its place; a batch whose rows cannot be read (damaged,
        edited, missing) is skipped with an error naming it, the other records are read."""
        from credit_risk.records.batches import BatchError, SideFiles, batch_of, rows_of

        keys = columns_of(columns)
        since, until = aware(since), aware(until)
        versions = None if model_versions is None else set(model_versions)
        files = SideFiles(self.path)
        chunk: list[dict[str, Any]] = []
        bad = 0
        for line in self.file.lines():
            try:
                rec = loads_line(line)
                batch = batch_of(rec)
                at = batch.at if batch is not None else Decision.model_validate(rec).at
            except (ValueError, TypeError):  # ValidationError is a ValueError
                bad += 1
                continue
            version = batch.model_version if batch is not None else rec.get("model_version")
            if ((since is not None and at < since) or (until is not None and at >= until)
                    or (versions is not None and version not in versions)):
                continue
            if batch is None:
                chunk.append(rec if keys is None else {k: rec.get(k) for k in keys})
            else:
                try:
                    with files.open(batch) as fh:
                        for row in rows_of(batch, fh, str(self.path), keys):
                            chunk.append(row)
                            if len(chunk) >= chunk_rows:
                                yield chunk
                                chunk = []
                except BatchError as exc:
                    log.error("decision log %s: %s", self.path, exc)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        if bad:
            log.warning("%s: skipped %d unreadable lines", self.path, bad)

    def prune(self, before: datetime) -> int:
        """Rewrite the file without the lines recorded before `before`, atomically (see
        `JsonlFile.rewrite`), then delete the rows files of the batches dropped (and those no
        record names, written before `before`). Lines that do not parse cannot be dated and
        are kept. The number of decisions deleted (a batch's: its rows)."""
        from credit_risk.records.batches import SideFiles, batch_of

        before_ = aware(before)
        assert before_ is not None
        files = SideFiles(self.path)
        dropped: list[str] = []
        kept: set[str] = set()
        deleted = [0]

        def keep(line: bytes) -> bool:
            try:
                rec = loads_line(line)
                batch = batch_of(rec)
                at = aware(batch.at if batch is not None else datetime.fromisoformat(rec["at"]))
            except (ValueError, KeyError, TypeError):
                return True
            assert at is not None
            if at >= before_:
                if batch is not None and batch.file:
                    kept.add(batch.file)
                return True
            deleted[0] += batch.rows if batch is not None else 1
            if batch is not None and batch.file:
                dropped.append(batch.file)
            return False

        with self._lock:
            try:
                self.file.rewrite(keep)
                files.remove(dropped + files.orphans(kept, before_))
            except OSError as exc:
                raise DecisionLogError(f"cannot prune {self.path}: {why(exc)}") from exc
        return deleted[0]
