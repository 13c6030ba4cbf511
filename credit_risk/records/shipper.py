"""The shipper of a spool: a background thread per serving worker that copies the durable
decisions of the spool's segments into PostgreSQL and deletes what is shipped.

It ships this process's own segments (up to what is fsync'd) and adopts orphans: segments whose
writer died (their flock is free). Each batch is one transaction: COPY into a temporary table,
then `INSERT ... ON CONFLICT (decision_id) DO NOTHING`; after the commit the segment's shipped
offset is noted beside it (`<segment>.shipped`). A crash between the commit and the note ships
the batch again, and the unique decision id stores it once: at least once, deduplicated. While
the database is down nothing moves and the segments wait; the shipper tries again every
`retry_s`. A decision the database refuses for its data (which it would refuse forever) goes to
`rejected-<pid>.jsonl` in the spool folder, with a critical log line, instead of blocking the
rest.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import psycopg

from credit_risk.records.decisions import Health
from credit_risk.records.decisions_pg import table_row, table_rows
from credit_risk.records.group_commit import COLUMNS, data_error
from credit_risk.records.jsonl import loads_line
from credit_risk.records.postgres import Database, close_quietly, dumps, why
from credit_risk.records.spool import PREFIX, SUFFIX, SpoolWriter

log = logging.getLogger(__name__)

_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS spool_in (decision_id text, at timestamptz, "
          "request_id text, model_version text, probability_of_default float8, "
          "credit_score int, rating text, risk text, inputs jsonb, result jsonb) "
          "ON COMMIT DELETE ROWS")
_ALL = ("decision_id", *COLUMNS)
_COPY = f"COPY spool_in ({', '.join(_ALL)}) FROM STDIN"
_MOVE = (f"INSERT INTO decisions ({', '.join(_ALL)}) SELECT {', '.join(_ALL)} FROM spool_in "
         "ON CONFLICT (decision_id) DO NOTHING")


class Shipper:
    """Ships the spool folder's segments to the database (`run` in a thread, or `ship_once`)."""

    def __init__(self, writer: SpoolWriter, db: Database, health: Health, *,
                 interval_s: float = 0.05, retry_s: float = 1.0, batch_rows: int = 5_000,
                 rotate_bytes: int = 64 << 20, statement_timeout_s: float = 30.0):
        self.writer = writer
        self.folder = writer.folder
        self.db = db
        self.health = health  # the database side: `failing` while shipping fails
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.batch_rows = batch_rows
        self.rotate_bytes = rotate_bytes
        self.statement_timeout_s = statement_timeout_s
        self.shipped_rows = 0
        self._offsets: dict[Path, int] = {}
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time (the thread, `flush`, `close`)

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="decision-spool-shipper",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        while not self._stop.is_set():
            pause = self.interval_s
            try:
                if self.ship_once() is None:
                    pause = self.retry_s
            except Exception:  # noqa: BLE001 - a bug must not stop shipping for good
                log.critical("decision spool: the shipper failed", exc_info=True)
                pause = self.retry_s
            self._wake.wait(pause)
            self._wake.clear()

    def stop(self, wait_s: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait_s)
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    # -- one pass -----------------------------------------------------------------------------
    def ship_once(self) -> int | None:
        """Ship what is durable in every segment it may take; the rows shipped, or None when
        the database refused (nothing of the failed batch is noted as shipped)."""
        with self._lock:
            return self._pass()

    def _pass(self) -> int | None:
        total = 0
        try:
            for seg, limit in self.writer.durable():
                total += self._ship(seg.path, seg.fd, limit)
                if seg.closed and self._offsets.get(seg.path, 0) >= limit:
                    self._done(seg.path)
                    self.writer.forget(seg)
            current = self.writer.current
            if current is not None:
                self.writer.rotate_if_shipped(self._offsets.get(current.path, 0),
                                              self.rotate_bytes)
            for path in sorted(self.folder.glob(f"{PREFIX}*{SUFFIX}")):
                total += self._adopt(path)
        except (psycopg.Error, OSError) as exc:
            self._close_connection()
            self.health.failed(f"shipping: {why(exc)}", count=False)
            log.warning("decision spool: shipping to %s failed (will retry): %s",
                        self.db.describe(), why(exc))
            return None
        self.health.failing = False
        return total

    def _adopt(self, path: Path) -> int:
        """Ship and delete an orphan segment, if its writer is gone and no other shipper has
        it: its flock is ours."""
        if any(seg.path == path for seg, _ in self.writer.durable()):
            return 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its writer lives, or another shipper has it
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                return 0  # shipped and deleted meanwhile
            size = os.fstat(fd).st_size
            shipped = self._ship(path, fd, size)
            if self._offsets.get(path, 0) >= _last_newline(fd, size):
                self._done(path)
                path.unlink(missing_ok=True)
                log.info("decision spool: shipped the orphan %s", path.name)
            return shipped
        finally:
            self._offsets.pop(path, None)  # the next adopter reads the note afresh
            os.close(fd)

    def _ship(self, path: Path, fd: int, limit: int) -> int:
        """The whole lines of [shipped offset, limit), batch by batch."""
        offset = self._offsets.get(path)
        if offset is None:
            offset = self._offsets[path] = _read_offset(path)
        shipped = 0
        while offset < limit:
            data = os.pread(fd, min(limit - offset, 8 << 20), offset)
            end = data.rfind(b"\n") + 1
            if end == 0:
                break  # an unfinished line: a write that was never acknowledged
            lines = data[:end].splitlines()
            for start in range(0, len(lines), self.batch_rows):
                self._insert(lines[start:start + self.batch_rows])
            offset += end
            shipped += len(lines)
            self._offsets[path] = offset
            _write_offset(path, offset)
        self.shipped_rows += shipped
        return shipped

    def _insert(self, lines: list[bytes]) -> None:
        rows = _rows(lines)
        try:
            self._copy(rows)
        except psycopg.Error as exc:
            if not data_error(exc) or len(rows) == 1:
                if len(rows) == 1 and data_error(exc):
                    self._reject(lines[0], exc)
                    return
                raise
            for line, row in zip(lines, rows, strict=True):  # find the refused one(s)
                try:
                    self._copy([row])
                except psycopg.Error as one:
                    if not data_error(one):
                        raise
                    self._reject(line, one)

    def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(_STAGE)
                with cur.copy(_COPY) as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(_MOVE)
        except psycopg.Error:
            if conn.broken or conn.closed:
                self._close_connection()
            raise

    def _reject(self, line: bytes, exc: BaseException) -> None:
        target = self.folder / f"rejected-{os.getpid()}.jsonl"
        with open(target, "ab") as fh:
            fh.write(line + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.critical("decision spool: the database refuses a decision (%s); kept in %s",
                     why(exc), target)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self.db.connect(statement_timeout_s=self.statement_timeout_s)
        return self._conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        close_quietly(conn)

    def _done(self, path: Path) -> None:
        self._offsets.pop(path, None)
        _offset_file(path).unlink(missing_ok=True)

    def backlog_bytes(self) -> int:
        """Bytes in the spool not yet shipped (an estimate: the segments' sizes minus their
        shipped offsets)."""
        total = 0
        for path in self.folder.glob(f"{PREFIX}*{SUFFIX}"):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            total += max(0, size - self._offsets.get(path, _read_offset(path)))
        return total


def _rows(lines: list[bytes]) -> list[tuple[Any, ...]]:
    """`_row` of each spool line, each call's decisions (a run of lines of one request)
    checked together. A line that is not a spooled decision: row by row, which says why."""
    try:
        records = [loads_line(line) for line in lines]
        rows: list[tuple[Any, ...]] = []
        for (at, request_id), call in groupby(records, key=itemgetter("at", "request_id")):
            done = list(call)
            table = table_rows(at, request_id, [r["inputs"] for r in done],
                               [r["result"] for r in done])
            rows += [_staged(rec["decision_id"], row) for rec, row in zip(done, table, strict=True)]
        return rows
    except (KeyError, TypeError, ValueError):  # ValidationError is a ValueError
        return [_row(line) for line in lines]


def _row(line: bytes) -> tuple[Any, ...]:
    """A spool line as the staging table's row (values as the group commit sends them)."""
    rec = loads_line(line)
    return _staged(rec["decision_id"],
                   table_row(rec["at"], rec["request_id"], rec["inputs"], rec["result"]))


def _staged(decision_id: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """A decision's table row as the staging table's row (values as the group commit sends
    them)."""
    return (decision_id, *(row[name] for name in COLUMNS[:7]), dumps(row["inputs"]),
            dumps(row["result"]))


def _offset_file(path: Path) -> Path:
    return path.with_name(path.name + ".shipped")


def _read_offset(path: Path) -> int:
    try:
        return int(_offset_file(path).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0  # from the start: what was shipped already is stored once


def _write_offset(path: Path, offset: int) -> None:
    """Noted atomically, not fsynced: a lost note only ships a batch again."""
    tmp = path.with_name(f".{path.name}.shipped.{os.getpid()}")
    tmp.write_text(str(offset))
    os.replace(tmp, _offset_file(path))


def _last_newline(fd: int, size: int) -> int:
    """The end of the last whole line of a file (a dead writer's unfinished line is not a
    decision anyone was answered)."""
    tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
    cut = tail.rfind(b"\n")
    return max(0, size - len(tail) + cut + 1) if cut >= 0 else 0
