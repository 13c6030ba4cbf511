"""The decision log in PostgreSQL (SQLAlchemy 2 + psycopg 3): `CREDIT_RISK_DECISION_LOG=
postgresql+psycopg://user@host:5432/db`. Imported only for such a URL.

Writes: the request threads of a process hand their records to one writer thread and wait; the
writer takes everything queued (at most `batch_rows` rows), inserts it in one transaction,
commits, and only then releases the waiting requests (group commit: one commit per group, not
per request, and never an acknowledgement before the commit). Bounds, both answered with
`DecisionLogError` (the API's 503): at most `queue_rows` rows wait (a request beyond that is
refused at once: bounded memory), and a request waits at most `commit_timeout_s` for its commit
(the writer's statements are cancelled by the server after the same time, so a stuck
database does not hold the writer forever). A request that timed out is taken off the queue if
the writer has not started on it; if its group was already being committed, its record may
still land: a record of a decision that was answered 503 is possible, an answered decision
without a record is not.

Schema: Alembic migrations shipped in `credit_risk/registry/migrations` (`migrate()`, run by
`credit-risk decisions migrate`), under an advisory lock so concurrent starts serialise. Tables
live in the connection's search_path (e.g. `?options=-csearch_path%3Dcredit_risk`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Engine, make_url

from credit_risk.registry.decisions import (
    CHUNK_ROWS,
    DecisionLog,
    DecisionLogError,
    _aware,
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
except ImportError:  # pragma: no cover - without the serving extra
    import json

    def _dumps(value: Any) -> str:
        return json.dumps(value, default=str, allow_nan=False)


class _Pending:
    """One write call's rows, waiting for their commit."""

    __slots__ = ("rows", "done", "error", "state")

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows
        self.done = threading.Event()
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
        self._writer: threading.Thread | None = None

    def _reset_after_fork(self) -> None:
        """In a forked child: the parent's writer thread and connections are not ours."""
        self._init_queue()
        self._probe_lock = threading.Lock()
        self._engine_lock = threading.Lock()
        for engine in self._engines.values():
            engine.dispose(close=False)

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    # -- connections -------------------------------------------------------------------------

    def _engine(self, role: str) -> Engine:
        """"writer": the group-commit thread's connection, statements cancelled by the server
        after the commit bound; "admin": reads, prune, migrations, checks (no such limit)."""
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
                                          pool_size=1 if role == "writer" else 2,
                                          max_overflow=0 if role == "writer" else 4,
                                          pool_timeout=self.connect_timeout_s)
                if role == "writer":
                    timeout_ms = max(100, int(self.commit_timeout_s * 1000))

                    @event.listens_for(engine, "connect")
                    def _limits(dbapi_conn: Any, _record: Any) -> None:
                        with dbapi_conn.cursor() as cur:
                            cur.execute(f"SET statement_timeout = {timeout_ms}")
                        dbapi_conn.commit()

                self._engines[role] = engine
            return engine

    # -- writes ------------------------------------------------------------------------------

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Hand the rows to the writer thread and wait until they are committed (or fail)."""
        at = datetime.now(UTC)
        rows = [_row(at, request_id, i, r) for i, r in zip(inputs, results, strict=True)]
        if not rows:
            return
        pending = _Pending(rows)
        with self._cond:
            if self._closed:
                raise self._refuse("the decision log is closed")
            if self._queue and self._queued_rows + len(rows) > self.queue_rows:
                raise self._refuse(f"{self._queued_rows} decisions already wait for the "
                                   f"database (queue bound {self.queue_rows})")
            self._start_writer()
            self._queue.append(pending)
            self._queued_rows += len(rows)
            self._cond.notify()
        if not pending.done.wait(self.commit_timeout_s):
            with self._cond:
                if pending.state == "queued":  # the writer never saw it: nothing will land
                    self._queue.remove(pending)
                    self._queued_rows -= len(rows)
                    pending.state = "cancelled"
                if pending.state != "done":
                    raise self._refuse(f"not committed within {self.commit_timeout_s:g} s")
        if pending.error is not None:
            with self._cond:
                self.failures += 1
            raise DecisionLogError(f"decision log {self.describe()}: "
                                   f"{_why(pending.error)}") from pending.error

    def _refuse(self, why: str) -> DecisionLogError:
        """Count a refused write (call with the lock held)."""
        self.failures += 1
        self.failing = True
        self.last_error = why
        log.error("decision log %s: %s", self.describe(), why)
        return DecisionLogError(f"decision log {self.describe()}: {why}")

    def _start_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._run, name="decision-log-writer",
                                            daemon=True)
            self._writer.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed and drained
                group: list[_Pending] = []
                n = 0
                while self._queue and (not group
                                       or n + len(self._queue[0].rows) <= self.batch_rows):
                    p = self._queue.popleft()
                    self._queued_rows -= len(p.rows)
                    p.state = "taken"
                    group.append(p)
                    n += len(p.rows)
            try:
                errors = self._commit_group(group)
            except BaseException as exc:  # a bug must not leave requests waiting
                log.critical("decision log writer: %s", exc, exc_info=True)
                errors = [exc] * len(group)
            with self._cond:
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
            for p in group:
                p.done.set()

    def _commit_group(self, group: list[_Pending]) -> list[BaseException | None]:
        """One transaction for the group. When the data of one write is refused (e.g. a NUL
        character, which JSONB cannot hold), each write is retried alone, so one bad request
        does not fail the others."""
        try:
            self._insert([row for p in group for row in p.rows])
            return [None] * len(group)
        except sa_exc.StatementError as exc:
            if len(group) == 1 or not _data_error(exc):
                return [exc] * len(group)
        out: list[BaseException | None] = []
        for p in group:
            try:
                self._insert(p.rows)
                out.append(None)
            except sa_exc.StatementError as exc:
                out.append(exc)
        return out

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """Insert and commit. A connection found dead before the commit (nothing of this
        transaction can have been committed) is replaced once; a failed commit is not retried
        (its outcome is unknown, and the requests are told it failed)."""
        engine = self._engine("writer")
        for attempt in (1, 2):
            conn = engine.connect()
            try:
                try:
                    conn.execute(_INSERT, _columns(rows))
                except sa_exc.DBAPIError as exc:
                    if attempt == 1 and exc.connection_invalidated:
                        log.warning("decision log %s: connection lost before the commit, "
                                    "retrying on a new one: %s", self.describe(), _why(exc))
                        continue
                    raise
                conn.commit()
                return
            finally:
                conn.close()

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
        """Insert one row and roll it back, under the writer's time limit: nothing is kept."""
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
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
        """Keyset pages over (at, id) on the index of that name: each chunk is one short query,
        no transaction or cursor stays open between chunks."""
        t = decisions
        where = []
        if since is not None:
            where.append(t.c.at >= _aware(since))
        if until is not None:
            where.append(t.c.at < _aware(until))
        if model_versions is not None:
            where.append(t.c.model_version.in_(sorted(model_versions)))
        last: tuple[datetime, int] | None = None
        engine = self._engine("admin")
        while True:
            query = sa.select(t.c.id, t.c.at, t.c.request_id, t.c.inputs, t.c.result).where(*where)
            if last is not None:
                query = query.where(sa.tuple_(t.c.at, t.c.id) > sa.tuple_(
                    sa.literal(last[0], sa.DateTime(timezone=True)), sa.literal(last[1])))
            query = query.order_by(t.c.at, t.c.id).limit(chunk_rows)
            try:
                with engine.connect() as conn:
                    rows = conn.execute(query).all()
            except sa_exc.SQLAlchemyError as exc:
                raise DecisionLogError(f"cannot read {self.describe()}: {_why(exc)}") from exc
            if not rows:
                return
            yield [record(r.at.astimezone(UTC).isoformat(), r.request_id, r.inputs, r.result)
                   for r in rows]
            if len(rows) < chunk_rows:
                return
            last = (rows[-1].at, rows[-1].id)

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
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join(timeout=self.commit_timeout_s + self.connect_timeout_s + 1)
        with self._engine_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


# One statement for a whole group, whatever its size: the rows go as one array per column
# (a fixed SQL text, prepared once per connection; about 4x faster than an executemany).
_COLUMNS = (("at", "timestamptz"), ("request_id", "text"), ("model_version", "text"),
            ("probability_of_default", "float8"), ("credit_score", "int"), ("rating", "text"),
            ("risk", "text"), ("inputs", "jsonb"), ("result", "jsonb"))
_INSERT = sa.text(
    f"INSERT INTO decisions ({', '.join(name for name, _ in _COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _COLUMNS) + ")")


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {name: [row[name] for row in rows] for name, _ in _COLUMNS[:7]}
    out["inputs"] = [_dumps(row["inputs"]) for row in rows]
    out["result"] = [_dumps(row["result"]) for row in rows]
    return out


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
    if isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError)):
        return not getattr(exc, "connection_invalidated", False)
    return isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError)


def _why(exc: BaseException) -> str:
    """The database's own message, first line (no SQL, no parameters, no password)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}".rstrip(": ")
