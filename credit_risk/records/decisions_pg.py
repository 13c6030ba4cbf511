"""The decision log in PostgreSQL: `CREDIT_RISK_DECISION_LOG=postgresql+psycopg://user@host/db`.
Imported only for such a URL.

Writes go through `group_commit.GroupCommit` (one commit per group of waiting requests, never an
acknowledgement before the commit). Reads go through a server-side cursor, a chunk per FETCH.
A batch (`credit-risk predict --log`) is a `decision_batches` row (`batches_pg`), its
decisions read back in their place by time. The schema is the Alembic chain in
`credit_risk/records/migrations` (`migrate()`, run by `credit-risk decisions migrate`). Tables
live in the connection's search_path (e.g. `?options=-csearch_path%3Dcredit_risk`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL

from credit_risk.records import batches_pg
from credit_risk.records.batches import Batch, BatchError, BatchRows
from credit_risk.records.decisions import (
    CHUNK_ROWS,
    DecisionLog,
    DecisionLogError,
    aware,
    check_decisions,
    columns_of,
    decision,
)
from credit_risk.records.group_commit import GroupCommit
from credit_risk.records.postgres import DB_ERRORS, Database, head_revision, why

log = logging.getLogger(__name__)

PRUNE_BATCH = 10_000  # rows deleted per transaction: short locks, bounded WAL per step

metadata = sa.MetaData()
decisions = sa.Table(
    "decisions", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text),
    sa.Column("probability_of_default", sa.Double),
    sa.Column("credit_score", sa.Integer),
    sa.Column("rating", sa.Text),
    sa.Column("risk", sa.Text),
    sa.Column("inputs", JSONB, nullable=False),
    sa.Column("result", JSONB, nullable=False),
    sa.Column("decision_id", sa.Text),  # set by the spool's shipper (unique), else NULL
)

# The record keys that have a column of their own (`columns=` reads them without `result`).
_KEY_COLUMNS = frozenset({"at", "request_id", "inputs", "model_version"})

_instances: weakref.WeakSet[PostgresDecisionLog] = weakref.WeakSet()


def _after_fork() -> None:
    for instance in list(_instances):
        instance.reset_after_fork()


os.register_at_fork(after_in_child=_after_fork)


class PostgresDecisionLog(DecisionLog):
    """Decisions in the `decisions` table. The constructor connects to nothing: the first
    write, read or `ok()` does."""

    def __init__(self, url: str | URL, *, queue_rows: int = 20_000, batch_rows: int = 2_000,
                 commit_timeout_s: float = 2.0, connect_timeout_s: float | None = None,
                 migrate: bool = False):
        """`migrate`: `ok()` also migrates a schema behind the code's (a worker that started
        before its database recovers by itself)."""
        super().__init__()
        self.auto_migrate = migrate
        try:
            self.db = Database(url, connect_timeout_s=connect_timeout_s
                               or max(2.0, commit_timeout_s))
        except ValueError as exc:
            raise DecisionLogError(f"decision log URL: {exc}") from exc
        self.url = self.db.url
        self.commit_timeout_s = commit_timeout_s
        self.writer = GroupCommit(self.db, self.health, queue_rows=queue_rows,
                                  batch_rows=batch_rows, commit_timeout_s=commit_timeout_s)
        self._checked = False  # `ok()` has looked at the schema once
        self._last_probe = 0.0
        self._probe_lock = threading.Lock()
        _instances.add(self)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's commits and connections are not ours."""
        self.writer.reset()
        self._probe_lock = threading.Lock()
        self.db.reset_after_fork()

    def describe(self) -> str:
        return self.db.describe()

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Queue the rows and wait until they are committed (see `group_commit`)."""
        at = datetime.now(UTC)
        try:
            rows = table_rows(at, request_id, inputs, results)
        except ValidationError as exc:
            raise DecisionLogError(f"decision log {self.describe()}: not a decision record: "
                                   f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
        if rows:
            try:
                self.writer.write(rows)
            finally:
                self._checked = True  # the write's outcome says what `ok()` would

    def write_batch(self, rows: BatchRows, batch: Batch) -> Batch:
        """The batch record and its compressed rows in one transaction."""
        try:
            stored = batches_pg.insert(self.db, rows, batch)
        except DB_ERRORS as exc:
            self.health.failed(why(exc))
            raise DecisionLogError(f"decision log {self.describe()}: batch: {why(exc)}") \
                from exc
        self.health.failing = False
        return stored

    def ok(self, min_interval_s: float | None = None) -> bool:
        """Ready when the schema is at the shipped head revision and a row can be inserted
        within the commit bound (a probe row, rolled back): checked once, and again at most
        once per interval while failing. A successful commit also clears `failing`."""
        if self._checked and not self.failing:
            return True
        interval = self.probe_interval_s if min_interval_s is None else min_interval_s
        with self._probe_lock:
            now = time.monotonic()
            if self._checked and now - self._last_probe < interval:
                return not self.failing
            self._last_probe = now
            try:
                current, head = self.revision(), self.head_revision()
                if current != head and self.auto_migrate:
                    current = self.migrate()
                problem = None if current == head else (
                    f"schema revision {current or 'none'}, the code needs {head}: run "
                    "`credit-risk decisions migrate`")
                if problem is None:
                    self._probe_insert()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with why
                problem = why(exc)
            self._checked = True
            if problem is not None:
                self.health.failed(problem, count=False)
                return False
            self.health.failing = False
            return True

    def _probe_insert(self) -> None:
        """Insert one row and roll it back, under the commit bound: nothing is kept."""
        probe = table_row(datetime.now(UTC), "probe", {}, {})
        with self.db.engine().connect() as conn:
            timeout_ms = max(100, int(self.commit_timeout_s * 1000))
            conn.execute(sa.text(f"SET LOCAL statement_timeout = {timeout_ms}"))
            conn.execute(decisions.insert(), probe)
            conn.rollback()

    def revision(self) -> str | None:
        """The schema revision of the database (None: not migrated)."""
        return self.db.revision()

    @staticmethod
    def head_revision() -> str:
        return head_revision()

    def migrate(self) -> str:
        """Create or upgrade the schema (decisions and outcomes) to the shipped head."""
        try:
            revision = self.db.migrate()
        except DB_ERRORS as exc:
            raise DecisionLogError(f"cannot migrate {self.describe()}: {why(exc)}") from exc
        self._checked = False  # the next `ok()` looks again
        return revision

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    model_versions: Collection[str] | None = None,
                    chunk_rows: int = CHUNK_ROWS,
                    columns: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """The decisions of the window (`_decisions`), each batch's in its place by time: the
        decisions before it, its rows, and so on. A batch whose rows cannot be read is
        skipped with an error naming it; the other records are read."""
        keys = columns_of(columns)
        since, until = aware(since), aware(until)
        try:
            found = batches_pg.heads(self.db, since, until, model_versions)
        except DB_ERRORS as exc:
            raise DecisionLogError(f"cannot read {self.describe()}: {why(exc)}") from exc
        start = since
        for batch_id, batch in found:
            yield from self._decisions(start, batch.at, model_versions, chunk_rows, keys)
            chunk: list[dict[str, Any]] = []
            try:
                for row in batches_pg.decisions_of(self.db, batch_id, batch, keys):
                    chunk.append(row)
                    if len(chunk) >= chunk_rows:
                        yield chunk
                        chunk = []
            except BatchError as exc:
                log.error("decision log %s: %s", self.describe(), exc)
            except DB_ERRORS as exc:
                raise DecisionLogError(f"cannot read {self.describe()}: {why(exc)}") from exc
            if chunk:
                yield chunk
            start = batch.at
        yield from self._decisions(start, until, model_versions, chunk_rows, keys)

    def _decisions(self, since: datetime | None, until: datetime | None,
                   model_versions: Collection[str] | None, chunk_rows: int,
                   keys: tuple[str, ...] | None) -> Iterator[list[dict[str, Any]]]:
        """One query over the window in (at, id) order, read through a server-side cursor
        `chunk_rows` rows per FETCH (one snapshot; the transaction ends with the last chunk or
        when the iterator is closed). Whole records are checked as `Decision`s.

        `columns`: only these are selected and decoded. `at`, `request_id`, `inputs` and
        `model_version` come from their own columns; any other key of the result as
        `result -> key`, extracted by the server (drift never fetches `result`)."""
        select: list[sql.Composable]
        params: list[Any] = []  # a result key is a bound parameter, like the filters
        if keys is None:
            select = [sql.Identifier(name) for name in ("at", "request_id", "inputs", "result")]
        else:
            select = [sql.Identifier(k) if k in _KEY_COLUMNS else sql.SQL("result -> %s")
                      for k in keys]
            params = [k for k in keys if k not in _KEY_COLUMNS]
        where: list[sql.Composable] = []
        for clause, value in (("at >= %s", since), ("at < %s", until),
                              ("model_version = ANY(%s)",
                               None if model_versions is None else sorted(model_versions))):
            if value is not None:
                where.append(sql.SQL(clause))
                params.append(value)
        query = sql.SQL("SELECT {} FROM decisions{} ORDER BY at, id").format(
            sql.SQL(", ").join(select),
            sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(where)) if where else sql.SQL(""))
        at_index = None if keys is None else (keys.index("at") if "at" in keys else None)
        try:
            with self.db.engine().connect() as conn:
                raw = conn.connection.driver_connection  # psycopg, decoding with orjson
                assert isinstance(raw, psycopg.Connection)
                with raw.cursor(name="credit_risk_decisions_read") as cur:
                    cur.itersize = chunk_rows
                    cur.execute(query, params)
                    while rows := cur.fetchmany(chunk_rows):
                        if keys is None:
                            yield [decision(_iso(at), rid, inputs, res)
                                   for at, rid, inputs, res in rows]
                        elif at_index is None:
                            yield [dict(zip(keys, row, strict=True)) for row in rows]
                        else:
                            yield [{**dict(zip(keys, row, strict=True)),
                                    "at": _iso(row[at_index])} for row in rows]
        except DB_ERRORS as exc:
            raise DecisionLogError(f"cannot read {self.describe()}: {why(exc)}") from exc

    def count(self, since: datetime | None = None, until: datetime | None = None) -> int:
        t = decisions
        query = sa.select(sa.func.count()).select_from(t)
        if since is not None:
            query = query.where(t.c.at >= aware(since))
        if until is not None:
            query = query.where(t.c.at < aware(until))
        try:
            with self.db.engine().connect() as conn:
                rows = int(conn.execute(query).scalar_one())
            return rows + batches_pg.count(self.db, aware(since), aware(until))
        except DB_ERRORS as exc:
            raise DecisionLogError(f"cannot count {self.describe()}: {why(exc)}") from exc

    def prune(self, before: datetime) -> int:
        """Delete decisions recorded before `before`, PRUNE_BATCH rows per transaction, then
        the batches (`batches_pg.prune`)."""
        t = decisions
        ids = sa.select(t.c.id).where(t.c.at < aware(before)).order_by(t.c.at, t.c.id) \
            .limit(PRUNE_BATCH).scalar_subquery()
        total = 0
        try:
            while True:
                with self.db.engine().begin() as conn:
                    deleted = conn.execute(sa.delete(t).where(t.c.id.in_(ids))).rowcount
                total += deleted
                if deleted < PRUNE_BATCH:
                    return total + batches_pg.prune(self.db, aware(before) or before)
        except DB_ERRORS as exc:
            raise DecisionLogError(f"cannot prune {self.describe()} ({total} deleted): "
                                   f"{why(exc)}") from exc

    def close(self) -> None:
        """Refuse new writes, wait (bounded) for a running commit, close the connections."""
        self.writer.close(self.commit_timeout_s + self.db.connect_timeout_s + 1)
        self.db.dispose()


def _iso(at: datetime) -> str:
    """A stored time as records give it: ISO 8601 in UTC."""
    return at.astimezone(UTC).isoformat()


def table_row(at: datetime | str, request_id: str, inputs: dict[str, Any],
              result: dict[str, Any]) -> dict[str, Any]:
    """The table row of a decision (checked as a `Decision` first)."""
    decision(at, request_id, inputs, result)
    return _columns(at, request_id, inputs, result)


def table_rows(at: datetime | str, request_id: str, inputs: Sequence[dict[str, Any]],
               results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`table_row` of each decision of one call, checked together (`check_decisions`)."""
    check_decisions(at, request_id, inputs, results)
    return [_columns(at, request_id, i, r) for i, r in zip(inputs, results, strict=True)]


def _columns(at: datetime | str, request_id: str, inputs: dict[str, Any],
             result: dict[str, Any]) -> dict[str, Any]:
    """The table row of a checked decision."""
    return {"at": at, "request_id": request_id,
            "model_version": _text(result.get("model_version")),
            "probability_of_default": _number(result.get("probability_of_default"), float),
            "credit_score": _number(result.get("credit_score"), int),
            "rating": _text(result.get("rating")), "risk": _text(result.get("risk")),
            "inputs": inputs, "result": result}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any, kind: type) -> Any:
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
