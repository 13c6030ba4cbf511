"""The decision log in PostgreSQL (SQLAlchemy 2 + psycopg 3): `CREDIT_RISK_DECISION_LOG=
postgresql+psycopg://user@host:5432/db`. Imported only for such a URL.

Writes (group commit, leader/follower): a request queues its rows and waits. The first waiting
thread that finds no commit running becomes the leader: it takes everything queued (at most
`batch_rows` rows), writes it in one statement (its own transaction: an INSERT for one row, a
COPY for more), and only when the server has committed it releases the requests of that
group (one commit per group, never an acknowledgement before the commit); then a waiting thread
leads the next group. No separate writer thread: a handoff to one cost more CPU per
request than the insert itself. Bounds, both answered with `DecisionLogError` (the API's 503):
at most `queue_rows` rows wait (a request beyond that is refused at once: bounded memory), and a
request waits at most `commit_timeout_s` for its commit (the committing connection's statements
are cancelled by the server after the same time, so a stuck database does not hold the lead
forever). A request that timed out is taken off the queue if no commit has started on it; if
its group was already being committed, its record may still land: a record of a decision that
was answered 503 is possible, an answered decision without a record is not.

Schema: Alembic migrations shipped in `credit_risk/registry/migrations` (`migrate()`, run by
`credit-risk decisions migrate`), under an advisory lock so concurrent starts serialise. Tables
live in the connection's search_path (e.g. `?options=-csearch_path%3Dcredit_risk`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Engine, make_url

from credit_risk.registry.decisions import (
    CHUNK_ROWS,
    DecisionLog,
    DecisionLogError,
    _aware,
    _columns,
    record,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x63726C6F67  # pg_advisory_xact_lock key of `migrate` ("crlog")
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
)

try:
    import orjson

    def _dumps(value: Any) -> str:
        return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_NON_STR_KEYS).decode()

    def _loads(data: bytes | str) -> Any:
        """JSONB as psycopg hands it over, decoded with orjson (several times faster than the
        json module, psycopg's default: reads of a million decisions are mostly this)."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # what orjson refuses and json reads (an int > 64 bits)
            return json.loads(data)
except ImportError:  # pragma: no cover - without the serving extra

    def _dumps(value: Any) -> str:
        return json.dumps(value, default=str, allow_nan=False)

    def _loads(data: bytes | str) -> Any:
        return json.loads(data)


class _Pending:
    """One write call's rows, waiting for their commit."""

    __slots__ = ("rows", "error", "state")

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows
        self.error: BaseException | None = None
        self.state = "queued"  # -> "taken" (in a transaction) -> "done"; or "cancelled"


_instances: weakref.WeakSet[PostgresDecisionLog] = weakref.WeakSet()


def _after_fork() -> None:
    for instance in list(_instances):
        instance._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork)


class PostgresDecisionLog(DecisionLog):
    """Decisions in the `decisions` table; see the module doc for the write protocol."""

    _head: str | None = None

    def __init__(self, url: str | URL, *, queue_rows: int = 20_000, batch_rows: int = 2_000,
                 commit_timeout_s: float = 2.0, connect_timeout_s: int | None = None):
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.drivername != "postgresql+psycopg":
            raise DecisionLogError(f"decision log URL: {parsed.drivername} is not supported")
        self.url = parsed
        self.queue_rows = queue_rows
        self.batch_rows = batch_rows
        self.commit_timeout_s = commit_timeout_s
        self.connect_timeout_s = connect_timeout_s or max(2, math.ceil(commit_timeout_s))
        self.failures = 0
        self.failing = False
        self.last_error = None
        self._checked = False  # `ok()` has looked at the schema once
        self._last_probe = 0.0
        self._probe_lock = threading.Lock()
        self._engines: dict[str, Engine] = {}
        self._engine_lock = threading.Lock()
        self._closed = False
        self._init_queue()
        _instances.add(self)

    def _init_queue(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._leading = False  # a thread is committing a group
        self._conn: psycopg.Connection[Any] | None = None

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's commits and connections are not ours."""
        self._init_queue()
        self._probe_lock = threading.Lock()
        self._engine_lock = threading.Lock()
        for engine in self._engines.values():
            engine.dispose(close=False)

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    # -- connections -------------------------------------------------------------------------

    def _engine(self, role: str) -> Engine:
        """"admin": reads, prune, migrations, checks (the writer has its own connection)."""
        with self._engine_lock:
            engine = self._engines.get(role)
            if engine is None:
                args: dict[str, Any] = {}
                query = self.url.query
                for key, value in (("connect_timeout", self.connect_timeout_s),
                                   ("keepalives", 1), ("keepalives_idle", 10),
                                   ("keepalives_interval", 5), ("keepalives_count", 3)):
                    if key not in query:
                        args[key] = value
                engine = sa.create_engine(self.url, connect_args=args, json_serializer=_dumps,
                                          json_deserializer=_loads, pool_size=2,
                                          max_overflow=4, pool_timeout=self.connect_timeout_s)
                self._engines[role] = engine
            return engine

    # -- writes ------------------------------------------------------------------------------

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Queue the rows and wait until they are committed (or fail). The first waiting
        thread that finds no commit running commits the queue, its own rows included
        (leader/follower group commit); the others wait for that commit or lead the next."""
        at = datetime.now(UTC)
        rows = [_row(at, request_id, i, r) for i, r in zip(inputs, results, strict=True)]
        if not rows:
            return
        pending = _Pending(rows)
        deadline = time.monotonic() + self.commit_timeout_s
        with self._cond:
            if self._closed:
                raise self._refuse("the decision log is closed")
            if self._queue and self._queued_rows + len(rows) > self.queue_rows:
                raise self._refuse(f"{self._queued_rows} decisions already wait for the "
                                   f"database (queue bound {self.queue_rows})")
            self._queue.append(pending)
            self._queued_rows += len(rows)
            while pending.state != "done" and self._leading:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._cancel(pending)
                    raise self._refuse(f"not committed within {self.commit_timeout_s:g} s")
                self._cond.wait(remaining)
            lead = pending.state != "done"  # nobody is committing: this thread does
            self._leading = self._leading or lead
        if lead:
            self._lead(pending, deadline)
        if pending.error is not None:
            with self._cond:
                self.failures += 1
            why = _why(pending.error)
            if isinstance(pending.error, psycopg.errors.QueryCanceled):
                why = f"not committed within {self.commit_timeout_s:g} s ({why})"
            raise DecisionLogError(f"decision log {self.describe()}: {why}") from pending.error

    def _cancel(self, pending: _Pending) -> None:
        """Take a write that timed out off the queue (call with the lock held); a write whose
        group is being committed stays, and its record may still land."""
        if pending.state == "queued":
            self._queue.remove(pending)
            self._queued_rows -= len(pending.rows)
            pending.state = "cancelled"

    def _refuse(self, why: str) -> DecisionLogError:
        """Count a refused write (call with the lock held)."""
        self.failures += 1
        self.failing = True
        self.last_error = why
        log.error("decision log %s: %s", self.describe(), why)
        return DecisionLogError(f"decision log {self.describe()}: {why}")

    def _lead(self, pending: _Pending, deadline: float) -> None:
        """Commit groups from the head of the queue until `pending` is done, then hand the
        lead on to a waiting thread."""
        try:
            while True:
                with self._cond:
                    if pending.state == "done":
                        return
                    if time.monotonic() >= deadline:
                        self._cancel(pending)
                        raise self._refuse(f"not committed within {self.commit_timeout_s:g} s")
                    group = self._take_group()
                try:
                    errors = self._commit_group(group)
                except BaseException as exc:  # a bug must not leave requests waiting
                    log.critical("decision log: %s", exc, exc_info=True)
                    errors = [exc] * len(group)
                with self._cond:
                    self._finish_group(group, errors)
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()

    def _take_group(self) -> list[_Pending]:
        """The queue's head, at most `batch_rows` rows (call with the lock held)."""
        group: list[_Pending] = []
        n = 0
        while self._queue and (not group or n + len(self._queue[0].rows) <= self.batch_rows):
            p = self._queue.popleft()
            self._queued_rows -= len(p.rows)
            p.state = "taken"
            group.append(p)
            n += len(p.rows)
        return group

    def _finish_group(self, group: list[_Pending], errors: list[BaseException | None]) -> None:
        """Release a committed (or failed) group and wake its waiters (lock held)."""
        for p, error in zip(group, errors, strict=True):
            p.error = error
            p.state = "done"
        failed = [e for e in errors if e is not None and not _data_error(e)]
        self._checked = True
        if failed:  # the database, not one request's data: not ready
            self.failing = True
            self.last_error = _why(failed[0])
            log.error("decision log %s: %d of %d writes failed: %s", self.describe(),
                      len(failed), len(group), self.last_error)
        else:
            self.failing = False
        for error in errors:
            if error is not None and _data_error(error):
                log.warning("decision log %s: a write was refused for its data: %s",
                            self.describe(), _why(error))
        self._cond.notify_all()

    def _commit_group(self, group: list[_Pending]) -> list[BaseException | None]:
        """One transaction for the group. When the data of one write is refused (e.g. a NUL
        character, which JSONB cannot hold), each write is retried alone, so one bad request
        does not fail the others."""
        try:
            self._insert([row for p in group for row in p.rows])
            return [None] * len(group)
        except Exception as exc:  # noqa: BLE001 - sorted by _data_error, told to the requests
            if len(group) == 1 or not _data_error(exc):
                return [exc] * len(group)
        out: list[BaseException | None] = []
        for p in group:
            try:
                self._insert(p.rows)
                out.append(None)
            except Exception as exc:  # noqa: BLE001 - as above
                out.append(exc)
        return out

    def _connect_writer(self) -> psycopg.Connection[Any]:
        """The connection that commits groups (psycopg directly: SQLAlchemy's pool checkout,
        reset and statement layer cost more CPU than the insert itself; used by one leader at
        a time). Autocommit: each group is one statement, its own transaction, durable when
        the server answers. Statements are cancelled by the server after the commit bound."""
        query = self.url.query
        args: dict[str, Any] = {key: value for key, value in (
            ("connect_timeout", self.connect_timeout_s), ("keepalives", 1),
            ("keepalives_idle", 10), ("keepalives_interval", 5), ("keepalives_count", 3))
            if key not in query}
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(conninfo, autocommit=True, **args)
        conn.execute(f"SET statement_timeout = {max(100, int(self.commit_timeout_s * 1000))}")
        return conn

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """One statement, committed when it returns: a single row as a prepared INSERT, more
        rows as one COPY. A connection the server has closed meanwhile (a restart, a killed
        session: its socket has something to read while idle) is replaced before sending;
        a statement that fails is not retried (its outcome is unknown, and the requests are
        told it failed)."""
        lines = [_line(row) for row in rows]  # a value that cannot be sent fails here
        conn = self._conn
        if conn is not None and (conn.closed or _readable(conn)):
            self._close_writer_connection()
            conn = None
        if conn is None:
            conn = self._conn = self._connect_writer()
        try:
            if len(lines) == 1:
                conn.execute(_INSERT_ONE, lines[0], prepare=True)
            else:
                with conn.cursor() as cur, cur.copy(_COPY) as copy:
                    for line in lines:
                        copy.write_row(line)
        except psycopg.Error:
            if conn.broken or conn.closed:
                self._close_writer_connection()
            raise

    def _close_writer_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    # -- state -------------------------------------------------------------------------------

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
                problem = None if current == head else (
                    f"schema revision {current or 'none'}, the code needs {head}: run "
                    "`credit-risk decisions migrate`")
                if problem is None:
                    self._probe_insert()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with why
                problem = _why(exc)
            self._checked = True
            self.failing = problem is not None
            if problem is not None:
                self.last_error = problem
                return False
            return True

    def _probe_insert(self) -> None:
        """Insert one row and roll it back, under the commit bound: nothing is kept."""
        probe = _row(datetime.now(UTC), "probe", {}, {})
        with self._engine("admin").connect() as conn:
            timeout_ms = max(100, int(self.commit_timeout_s * 1000))
            conn.execute(sa.text(f"SET LOCAL statement_timeout = {timeout_ms}"))
            conn.execute(decisions.insert(), probe)
            conn.rollback()

    def revision(self) -> str | None:
        """The schema revision of the database (None: not migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self._engine("admin").connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @classmethod
    def head_revision(cls) -> str:
        if cls._head is None:
            from alembic.script import ScriptDirectory

            head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
            assert head is not None
            cls._head = head
        return cls._head

    def migrate(self) -> str:
        """Create or upgrade the schema to the shipped head, in one transaction under an
        advisory lock (two callers at once: the second waits, then finds nothing to do)."""
        from alembic import command

        try:
            with self._engine("admin").begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": MIGRATION_LOCK})
                config = _alembic_config()
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except sa_exc.SQLAlchemyError as exc:
            raise DecisionLogError(f"cannot migrate {self.describe()}: {_why(exc)}") from exc
        self._checked = False  # the next `ok()` looks again
        return self.head_revision()

    # -- reads and retention -----------------------------------------------------------------

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    model_versions: Collection[str] | None = None,
                    chunk_rows: int = CHUNK_ROWS,
                    columns: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """One query over the window in (at, id) order, read through a server-side cursor
        `chunk_rows` rows per FETCH: memory holds one chunk, whatever the window. The cursor's
        transaction (one snapshot, a consistent read) stays open until the last chunk has been
        read or the iterator is closed. Planned as a cursor (a plan that returns rows at once:
        the (at, id) index, no sort of the window). JSONB is decoded with orjson.

        `columns`: only these are selected and decoded. `at`, `request_id`, `inputs` and
        `model_version` come from their own columns (`model_version` as text, as written);
        any other key of the result as `result -> key`, extracted by the server (so drift,
        which needs `("inputs", "model_version")`, never fetches nor decodes `result`)."""
        keys = _columns(columns)
        select: list[sql.Composable]
        params: list[Any] = []  # a result key is a bound parameter, like the filters
        if keys is None:
            select = [sql.Identifier(name) for name in ("at", "request_id", "inputs", "result")]
        else:
            select = [sql.Identifier(k) if k in _KEY_COLUMNS else sql.SQL("result -> %s")
                      for k in keys]
            params = [k for k in keys if k not in _KEY_COLUMNS]
        where: list[sql.Composable] = []
        if since is not None:
            where.append(sql.SQL("at >= %s"))
            params.append(_aware(since))
        if until is not None:
            where.append(sql.SQL("at < %s"))
            params.append(_aware(until))
        if model_versions is not None:
            where.append(sql.SQL("model_version = ANY(%s)"))
            params.append(sorted(model_versions))
        query = sql.SQL("SELECT {} FROM decisions{} ORDER BY at, id").format(
            sql.SQL(", ").join(select),
            sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(where)) if where else sql.SQL(""))
        at_index = None if keys is None else (keys.index("at") if "at" in keys else None)
        try:
            with self._engine("admin").connect() as conn:
                raw = conn.connection.driver_connection  # psycopg, decoding with `_loads`
                assert isinstance(raw, psycopg.Connection)
                with raw.cursor(name="credit_risk_decisions_read") as cur:
                    cur.itersize = chunk_rows
                    cur.execute(query, params)
                    while rows := cur.fetchmany(chunk_rows):
                        if keys is None:
                            yield [record(_iso(at), rid, inputs, res)
                                   for at, rid, inputs, res in rows]
                        elif at_index is None:
                            yield [dict(zip(keys, row, strict=True)) for row in rows]
                        else:
                            yield [{**dict(zip(keys, row, strict=True)),
                                    "at": _iso(row[at_index])} for row in rows]
        except (psycopg.Error, sa_exc.SQLAlchemyError) as exc:
            raise DecisionLogError(f"cannot read {self.describe()}: {_why(exc)}") from exc

    def count(self, since: datetime | None = None, until: datetime | None = None) -> int:
        t = decisions
        query = sa.select(sa.func.count()).select_from(t)
        if since is not None:
            query = query.where(t.c.at >= _aware(since))
        if until is not None:
            query = query.where(t.c.at < _aware(until))
        with self._engine("admin").connect() as conn:
            return int(conn.execute(query).scalar_one())

    def prune(self, before: datetime) -> int:
        """Delete decisions recorded before `before`, PRUNE_BATCH rows per transaction."""
        t = decisions
        ids = sa.select(t.c.id).where(t.c.at < _aware(before)).order_by(t.c.at, t.c.id) \
            .limit(PRUNE_BATCH).scalar_subquery()
        total = 0
        try:
            while True:
                with self._engine("admin").begin() as conn:
                    deleted = conn.execute(sa.delete(t).where(t.c.id.in_(ids))).rowcount
                total += deleted
                if deleted < PRUNE_BATCH:
                    return total
        except sa_exc.SQLAlchemyError as exc:
            raise DecisionLogError(f"cannot prune {self.describe()} ({total} deleted): "
                                   f"{_why(exc)}") from exc

    def close(self) -> None:
        """Refuse new writes, wait (bounded) for a running commit, close the connections."""
        deadline = time.monotonic() + self.commit_timeout_s + self.connect_timeout_s + 1
        with self._cond:
            self._closed = True
            while self._leading and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            idle = not self._leading
        if idle:
            self._close_writer_connection()
        with self._engine_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


# A group goes to the table in one COPY (text format; psycopg escapes the values): about a
# third of the client CPU of an INSERT per group and a quarter per row for large groups.
_COLUMNS = ("at", "request_id", "model_version", "probability_of_default", "credit_score",
            "rating", "risk", "inputs", "result")
_COPY = f"COPY decisions ({', '.join(_COLUMNS)}) FROM STDIN"
_INSERT_ONE = (f"INSERT INTO decisions ({', '.join(_COLUMNS)}) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)")


# The record keys that have a column of their own (`select` reads them without `result`).
_KEY_COLUMNS = frozenset({"at", "request_id", "inputs", "model_version"})


def _iso(at: datetime) -> str:
    """A stored time as records give it: ISO 8601 in UTC."""
    return at.astimezone(UTC).isoformat()


def _readable(conn: psycopg.Connection[Any]) -> bool:
    """An idle connection with something to read: the server has closed it (or is about to:
    a termination notice); poll, not select, so that any descriptor number works."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _line(row: dict[str, Any]) -> tuple[Any, ...]:
    line = tuple(row[name] for name in _COLUMNS[:7])
    return (*line, _dumps(row["inputs"]), _dumps(row["result"]))


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def _row(at: datetime, request_id: str, inputs: dict[str, Any],
         result: dict[str, Any]) -> dict[str, Any]:
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


def _data_error(exc: BaseException) -> bool:
    """Refused for the data of a write (which the database keeps refusing), not for the
    database's state: a data or integrity error, or values that cannot be sent at all."""
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        return True
    return isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, psycopg.Error)


def _why(exc: BaseException) -> str:
    """The database's own message, first line (no SQL, no parameters, no password)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}".rstrip(": ")
