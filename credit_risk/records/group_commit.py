"""Group commit of decision rows to PostgreSQL (leader/follower), used by `decisions_pg`.

A request queues its rows and waits. The first waiting thread that finds no commit running
becomes the leader: it takes everything queued (at most `batch_rows` rows), writes it in one
statement (its own transaction: an INSERT for one row, a COPY for more), and only when the
server has committed it releases the requests of that group; then a waiting thread leads the
next group. No separate writer thread: a handoff to one cost more CPU per request than the
insert itself. Bounds, both answered with `DecisionLogError` (the API's 503): at most
`queue_rows` rows wait (beyond that a request is refused at once), and a request waits at most
`commit_timeout_s` for its commit: the server cancels a statement after half of that, and a
write with less than half left is refused rather than started, so waiting for the group ahead
and its own statement fit in the bound (plus the connection time when the connection must be
made again: libpq's connect_timeout, at least 2 s). A request that timed out is taken off the
queue if no commit has started on it; if its group was already being committed, its record may
still land: a record of a decision that was answered 503 is possible, an answered decision
without a record is not.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import deque
from typing import Any

import psycopg

from credit_risk.records.decisions import DecisionLogError, Health
from credit_risk.records.postgres import Database, close_quietly, dumps, why

log = logging.getLogger(__name__)

# A group goes to the table in one COPY (text format; psycopg escapes the values): about a
# third of the client CPU of an INSERT per group and a quarter per row for large groups.
COLUMNS = ("at", "request_id", "model_version", "probability_of_default", "credit_score",
           "rating", "risk", "inputs", "result")
_COPY = f"COPY decisions ({', '.join(COLUMNS)}) FROM STDIN"
_INSERT_ONE = (f"INSERT INTO decisions ({', '.join(COLUMNS)}) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)")


class _Pending:
    """One write call's rows, waiting for their commit."""

    __slots__ = ("rows", "deadline", "error", "state")

    def __init__(self, rows: list[dict[str, Any]], deadline: float):
        self.rows = rows
        self.deadline = deadline
        self.error: BaseException | None = None
        self.state = "queued"  # -> "taken" (in a transaction) -> "done"; or "cancelled"


class GroupCommit:
    """The write side of the PostgreSQL decision log; see the module doc for the protocol."""

    def __init__(self, db: Database, health: Health, *, queue_rows: int, batch_rows: int,
                 commit_timeout_s: float):
        self.db = db
        self.health = health
        self.queue_rows = queue_rows
        self.batch_rows = batch_rows
        self.commit_timeout_s = commit_timeout_s
        self.statement_timeout_s = commit_timeout_s / 2
        self.commits = 0  # statements committed (one per group)
        self.committed_rows = 0
        self.reset()

    def reset(self) -> None:
        """An empty queue and no connection (also in a forked child: the parent's are not
        ours)."""
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._leading = False  # a thread is committing a group
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Queue the rows and wait until they are committed (or fail). The first waiting
        thread that finds no commit running commits the queue, its own rows included."""
        deadline = time.monotonic() + self.commit_timeout_s
        pending = _Pending(rows, deadline)
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
            self._lead(pending)
        if pending.error is not None:
            with self._cond:
                self.health.failures += 1
            reason = why(pending.error)
            if isinstance(pending.error, (psycopg.errors.QueryCanceled, TimeoutError)):
                reason = f"not committed within {self.commit_timeout_s:g} s ({reason})"
            raise DecisionLogError(f"decision log {self.db.describe()}: {reason}") \
                from pending.error

    def _cancel(self, pending: _Pending) -> None:
        """Take a write that timed out off the queue (lock held); a write whose group is
        being committed stays, and its record may still land."""
        if pending.state == "queued":
            self._queue.remove(pending)
            self._queued_rows -= len(pending.rows)
            pending.state = "cancelled"

    def _refuse(self, reason: str) -> DecisionLogError:
        """Count a refused write (lock held)."""
        self.health.failed(reason)
        log.error("decision log %s: %s", self.db.describe(), reason)
        return DecisionLogError(f"decision log {self.db.describe()}: {reason}")

    def _lead(self, pending: _Pending) -> None:
        """Commit groups from the head of the queue until `pending` is done, then hand the
        lead on to a waiting thread."""
        try:
            while True:
                with self._cond:
                    if pending.state == "done":
                        return
                    group = self._take_group()
                if not group:
                    continue
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
        """The queue's head, at most `batch_rows` rows (lock held). A write whose statement
        could not end before its deadline is refused instead."""
        group: list[_Pending] = []
        n = 0
        late = time.monotonic() + self.statement_timeout_s
        while self._queue and (not group or n + len(self._queue[0].rows) <= self.batch_rows):
            p = self._queue.popleft()
            self._queued_rows -= len(p.rows)
            if p.deadline < late:
                p.error = TimeoutError("the database is too slow")
                p.state = "done"
                self.health.failed("not committed within "
                                   f"{self.commit_timeout_s:g} s", count=False)
                self._cond.notify_all()
                continue
            p.state = "taken"
            group.append(p)
            n += len(p.rows)
        return group

    def _finish_group(self, group: list[_Pending], errors: list[BaseException | None]) -> None:
        """Release a committed (or failed) group and wake its waiters (lock held)."""
        for p, error in zip(group, errors, strict=True):
            p.error = error
            p.state = "done"
        failed = [e for e in errors if e is not None and not data_error(e)]
        if failed:  # the database, not one request's data: not ready
            self.health.failed(why(failed[0]), count=False)
            log.error("decision log %s: %d of %d writes failed: %s", self.db.describe(),
                      len(failed), len(group), self.health.last_error)
        else:
            self.health.failing = False
        for error in errors:
            if error is not None and data_error(error):
                log.warning("decision log %s: a write was refused for its data: %s",
                            self.db.describe(), why(error))
        self._cond.notify_all()

    def _commit_group(self, group: list[_Pending]) -> list[BaseException | None]:
        """One transaction for the group. When the data of one write is refused (e.g. a NUL
        character, which JSONB cannot hold), each write is retried alone, so one bad request
        does not fail the others."""
        try:
            self._insert([row for p in group for row in p.rows])
            return [None] * len(group)
        except Exception as exc:  # noqa: BLE001 - sorted by data_error, told to the requests
            if len(group) == 1 or not data_error(exc):
                return [exc] * len(group)
        out: list[BaseException | None] = []
        for p in group:
            try:
                self._insert(p.rows)
                out.append(None)
            except Exception as exc:  # noqa: BLE001 - as above
                out.append(exc)
        return out

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """One statement, committed when it returns: a single row as a prepared INSERT, more
        rows as one COPY. A connection the server has closed meanwhile (a restart, a killed
        session: its socket has something to read while idle) is replaced before sending;
        a statement that fails is not retried (its outcome is unknown, and the requests are
        told it failed)."""
        lines = [_line(row) for row in rows]  # a value that cannot be sent fails here
        conn = self._conn
        if conn is not None and (conn.closed or _readable(conn)):
            self._close_connection()
            conn = None
        if conn is None:
            conn = self._conn = self.db.connect(statement_timeout_s=self.statement_timeout_s)
        try:
            if len(lines) == 1:
                conn.execute(_INSERT_ONE, lines[0], prepare=True)
            else:
                with conn.cursor() as cur, cur.copy(_COPY) as copy:
                    for line in lines:
                        copy.write_row(line)
        except psycopg.Error:
            if conn.broken or conn.closed:
                self._close_connection()
            raise
        self.commits += 1
        self.committed_rows += len(lines)

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        close_quietly(conn)

    def close(self, wait_s: float) -> None:
        """Refuse new writes, wait (at most `wait_s`) for a running commit, close the
        connection."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            self._closed = True
            while self._leading and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            idle = not self._leading
        if idle:
            self._close_connection()


def _readable(conn: psycopg.Connection[Any]) -> bool:
    """An idle connection with something to read: the server has closed it (or is about to:
    a termination notice); poll, not select, so that any descriptor number works."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _line(row: dict[str, Any]) -> tuple[Any, ...]:
    return (*(row[name] for name in COLUMNS[:7]), dumps(row["inputs"]), dumps(row["result"]))


def data_error(exc: BaseException) -> bool:
    """Refused for the data of a write (which the database keeps refusing), not for the
    database's state: a data or integrity error, or values that cannot be sent at all."""
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        return True
    return isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, psycopg.Error)
