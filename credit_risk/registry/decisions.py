"""The decision log: one record per scored application (inputs, PD, score, model version).

`DecisionLog` is the interface; `DecisionLog(target)` opens the backend the target names:

- a path: `JsonlDecisionLog`, one JSON line per decision in a local file (the embedded
  default). A call's decisions are appended whole or not at all (one write of all lines under
  an exclusive lock; on a short write, ENOSPC, EROFS or any other error the file is cut back to
  its size before the call, so no half line stays).
- a URL `postgresql+psycopg://...`: `credit_risk.registry.decisions_pg.PostgresDecisionLog`,
  a table written by one group-commit thread per process (imported only for such a URL, so
  the default needs neither SQLAlchemy nor a server).

Fail closed, for both: a failure raises `DecisionLogError`, so the caller never returns a
decision without its audit record. Reads are windowed (`iter_chunks(since, until)`: lists of at
most `chunk_rows` records, never the whole log in memory; `columns=` cuts each record to the keys
a reader uses, and the database then reads only those); `prune(before)` enforces retention.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_risk.errors import CreditRiskError

if TYPE_CHECKING:
    from credit_risk.config import Settings

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")
CHUNK_ROWS = 10_000

try:  # orjson (in the serving extra) is several times faster on batches
    import orjson

    def _line(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE
                            | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)

    def _parse(line: bytes) -> Any:
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:  # e.g. NaN, which json.dumps writes and orjson refuses
            return json.loads(line)
except ImportError:  # pragma: no cover - the library works without it
    def _line(record: dict[str, Any]) -> bytes:
        return (json.dumps(record, default=str) + "\n").encode()

    def _parse(line: bytes) -> Any:
        return json.loads(line)


class DecisionLogError(CreditRiskError, RuntimeError):
    """The decisions could not be logged (nothing of them was kept): do not return them."""


def is_database_url(target: object) -> bool:
    """Whether a decision-log setting names a database (a URL) rather than a file."""
    return isinstance(target, str) and "://" in target


class DecisionLog:
    """Where decisions are recorded. `DecisionLog(target)` opens the backend for `target` (a
    path or a PostgreSQL URL, see the module doc); subclasses are the backends.

    State every backend keeps for `/ready` and the metrics: `failing` (the last write or
    check failed), `failures` (count), `last_error` (why, without credentials)."""

    failures: int
    failing: bool
    last_error: str | None
    probe_interval_s = 1.0  # while failing, `ok()` checks the backend at most this often

    def __new__(cls, *args: Any, **kwargs: Any) -> DecisionLog:
        if cls is DecisionLog:  # the interface itself: the backend its target names
            target = args[0] if args else kwargs.get("target", kwargs.get("path"))
            cls = backend_class(target)
        return super().__new__(cls)

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Record one decision per (inputs, result), all of them durably before returning,
        or none: DecisionLogError."""
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
        given), in lists of at most `chunk_rows`: {"at", "request_id", "inputs", **result}.

        `columns`: only these keys of each record, in this order (None for a key the record
        lacks), e.g. `("inputs", "model_version")` for drift; the window, the version filter
        and the order are the same as without it. A backend reads no more than these where it
        can (PostgreSQL selects and decodes just those columns)."""
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

    def close(self) -> None:
        """Release connections and threads (pending writes are finished first)."""

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> list[dict[str, Any]]:
        """All decisions of a window as one list: for small windows and tests; monitoring
        iterates `iter_chunks`."""
        return [r for chunk in self.iter_chunks(since, until) for r in chunk]

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def backend_class(target: object) -> type[DecisionLog]:
    """The backend for a decision-log setting: a PostgreSQL URL or a file path."""
    if target is None or target == "":
        raise DecisionLogError("no decision log configured")
    if is_database_url(target):
        scheme = str(target).split("://", 1)[0].lower()
        if scheme not in POSTGRES_SCHEMES:
            raise DecisionLogError(f"decision log URL scheme {scheme!r}: only "
                                   "postgresql+psycopg:// is supported")
        try:
            from credit_risk.registry.decisions_pg import PostgresDecisionLog
        except ModuleNotFoundError as exc:
            raise DecisionLogError(
                f"a PostgreSQL decision log needs the postgres extra (no module named "
                f"{exc.name!r}): pip install -c constraints.txt 'credit-risk[postgres]'") from exc
        return PostgresDecisionLog
    return JsonlDecisionLog


def open_decision_log(settings: Settings) -> DecisionLog | None:
    """The decision log the settings name (None: decisions are not logged), with the
    settings' bounds for a database backend."""
    target = settings.decisions.url
    if target is None:
        return None
    if is_database_url(target):
        cls = backend_class(target)
        return cls(str(target), queue_rows=settings.decisions.queue_rows,
                   batch_rows=settings.decisions.batch_rows,
                   commit_timeout_s=settings.decisions.commit_timeout_s)
    return JsonlDecisionLog(Path(target))


def prune_decisions(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Enforce `decision_retention_days` on the configured decision log: delete decisions
    older than that (nothing when no retention is set). A summary for the task's log/XCom."""
    days = settings.decisions.retention_days
    if settings.decisions.url is None:
        return {"status": "no decision log", "deleted": 0}
    if days is None:
        return {"status": "kept: no retention set", "deleted": 0}
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    dlog = open_decision_log(settings)
    assert dlog is not None
    try:
        deleted = dlog.prune(before)
        where = dlog.describe()
    finally:
        dlog.close()
    log.info("decision log %s: deleted %d decisions before %s (retention %s days)",
             where, deleted, before.isoformat(), days)
    return {"status": "pruned", "log": where, "before": before.isoformat(), "deleted": deleted,
            "retention_days": days}


def record(at: str, request_id: str, inputs: dict[str, Any],
           result: dict[str, Any]) -> dict[str, Any]:
    """One decision as it is read back from every backend."""
    return {"at": at, "request_id": request_id, "inputs": inputs, **result}


def _columns(columns: Sequence[str] | None) -> tuple[str, ...] | None:
    """The record keys an `iter_chunks(columns=...)` asked for (None: whole records)."""
    if columns is None:
        return None
    if isinstance(columns, str):  # ("inputs") is a string, not one column
        raise TypeError("columns: a sequence of record keys, not a string")
    keys = tuple(dict.fromkeys(columns))
    if not all(isinstance(k, str) and k for k in keys):
        raise TypeError(f"columns: record keys are non-empty strings, not {columns!r}")
    return keys


def _aware(t: datetime | None) -> datetime | None:
    """Naive times are UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


class JsonlDecisionLog(DecisionLog):
    """JSON lines appended with O_APPEND and an exclusive lock, so several workers can share
    one file; remembers whether the last write failed (`failing`, `last_error`)."""

    PROBE_BYTES = 4096

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.failures = 0
        self.last_error = None
        self.failing = False
        self._last_probe = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # reported by the first write and by `ok()`, not a crash here
            self._failed(exc)

    def describe(self) -> str:
        return str(self.path)

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Append one line per decision, all of them or none; DecisionLogError if none."""
        now = datetime.now(UTC).isoformat()
        lines = b"".join(
            _line({"at": now, "request_id": request_id, "inputs": i, **r})
            for i, r in zip(inputs, results, strict=True)
        )
        with self._lock:
            try:
                self._append(lines)
            except OSError as exc:
                self._failed(exc)
                raise DecisionLogError(f"decision log {self.path}: {_why(exc)}") from exc
            self.failing = False

    def _open_locked(self, flags: int) -> int:
        """The log file open and exclusively locked; the file at the path, not one that a
        prune has just replaced (other processes: nobody appends or prunes while we hold it)."""
        for _ in range(100):
            fd = os.open(self.path, flags, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                except FileNotFoundError:
                    now = None
                if now is not None and (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # replaced by a prune while we waited: open the new file
        raise OSError(errno.EAGAIN, "the decision log keeps being replaced")

    def _append(self, data: bytes) -> None:
        fd = self._open_locked(os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    written = self._write(fd, view)
                    if written <= 0:
                        raise OSError(errno.EIO, "write returned no progress")
                    view = view[written:]
            except BaseException:
                try:
                    os.ftruncate(fd, start)  # cut our partial lines: the file stays whole
                except OSError as exc:
                    log.critical("%s: cannot cut a partial write back to %d bytes: %s",
                                 self.path, start, exc)
                raise
        finally:
            os.close(fd)  # also releases the lock

    @staticmethod
    def _write(fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        self.failing = True
        self.last_error = _why(exc)
        log.error("decision log %s cannot be written: %s", self.path, self.last_error)

    def ok(self, min_interval_s: float | None = None) -> bool:
        """Whether decisions can be logged. While failing, at most once per `min_interval_s`
        probe: the log opens for appending and a few KB fit beside it (nothing is added to it)."""
        if not self.failing:
            return True
        interval = self.probe_interval_s if min_interval_s is None else min_interval_s
        with self._lock:
            now = time.monotonic()
            if now - self._last_probe < interval:
                return not self.failing
            self._last_probe = now
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
                probe = self.path.with_name(f".{self.path.name}.probe-{os.getpid()}")
                try:
                    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    try:
                        view = memoryview(b"\0" * self.PROBE_BYTES)
                        while view:
                            view = view[self._write(fd, view):]
                    finally:
                        os.close(fd)
                finally:
                    probe.unlink(missing_ok=True)
            except OSError as exc:
                self.last_error = _why(exc)
                return False
            self.failing = False
            log.info("decision log %s is writable again", self.path)
            return True

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    model_versions: Collection[str] | None = None,
                    chunk_rows: int = CHUNK_ROWS,
                    columns: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Streams the file once, line by line (lines that do not parse are skipped with a
        warning); memory holds one chunk, not the log. With `columns`, each line is still
        parsed whole (a line is one JSON object), then cut to those keys."""
        if not self.path.exists():
            return
        keys = _columns(columns)
        since, until = _aware(since), _aware(until)
        versions = None if model_versions is None else set(model_versions)
        chunk: list[dict[str, Any]] = []
        bad = 0
        with self.path.open("rb") as fh:
            for line in fh:
                try:
                    rec = _parse(line)
                    at = _aware(datetime.fromisoformat(rec["at"]))
                except (ValueError, KeyError, TypeError):
                    bad += 1
                    continue
                assert at is not None
                if ((since is not None and at < since) or (until is not None and at >= until)
                        or (versions is not None and rec.get("model_version") not in versions)):
                    continue
                chunk.append(rec if keys is None else {k: rec.get(k) for k in keys})
                if len(chunk) >= chunk_rows:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk
        if bad:
            log.warning("%s: skipped %d unreadable lines", self.path, bad)

    def prune(self, before: datetime) -> int:
        """Rewrite the file without the lines recorded before `before`, atomically: the kept
        lines go to a temporary file beside it, fsynced, renamed over the log, all under the
        writers' lock (a writer that waited for it appends to the new file). Lines that do not
        parse cannot be dated and are kept."""
        before_ = _aware(before)
        assert before_ is not None
        if not self.path.exists():
            return 0
        tmp = self.path.with_name(f".{self.path.name}.prune-{os.getpid()}")
        dropped = 0
        with self._lock:
            fd = self._open_locked(os.O_RDONLY)
            try:
                mode = os.fstat(fd).st_mode & 0o7777
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
                try:
                    with os.fdopen(os.dup(fd), "rb") as src, os.fdopen(out, "wb") as dst:
                        for line in src:
                            try:
                                at = _aware(datetime.fromisoformat(json.loads(line)["at"]))
                            except (ValueError, KeyError, TypeError):
                                at = None
                            if at is not None and at < before_:
                                dropped += 1
                                continue
                            dst.write(line)
                        dst.flush()
                        os.fsync(dst.fileno())
                    if dropped:
                        os.replace(tmp, self.path)
                        dfd = os.open(self.path.parent, os.O_RDONLY)
                        try:
                            os.fsync(dfd)
                        finally:
                            os.close(dfd)
                finally:
                    tmp.unlink(missing_ok=True)
            except OSError as exc:
                raise DecisionLogError(f"cannot prune {self.path}: {_why(exc)}") from exc
            finally:
                os.close(fd)  # releases the lock: waiting writers reopen the new file
        return dropped


def _why(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror or exc}" if name else str(exc)
