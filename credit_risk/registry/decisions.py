"""The decision log: one JSON line per scored application (inputs, PD, score, model version).

Fail closed: a call's decisions are appended whole or not at all (one write of all lines
under an exclusive lock; on a short write, ENOSPC, EROFS or any other error the file is cut
back to its size before the call, so no half line stays), and a failure raises
`DecisionLogError`, so the caller never returns a decision without its audit record.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credit_risk.errors import CreditRiskError

log = logging.getLogger(__name__)

try:  # orjson (in the serving extra) is several times faster on batches
    import orjson

    def _line(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE
                            | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
except ImportError:  # pragma: no cover - the library works without it
    def _line(record: dict[str, Any]) -> bytes:
        return (json.dumps(record, default=str) + "\n").encode()


class DecisionLogError(CreditRiskError, RuntimeError):
    """The decisions could not be logged (nothing of them was kept): do not return them."""


class DecisionLog:
    """Appends whole lines with O_APPEND and an exclusive lock, so several workers can share
    one file; remembers whether the last write failed (`failing`, `last_error`)."""

    PROBE_BYTES = 4096
    probe_interval_s = 1.0  # while failing, `ok()` probes the disk at most this often

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.failures = 0
        self.last_error: str | None = None
        self.failing = False
        self._last_probe = 0.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # reported by the first write and by `ok()`, not a crash here
            self._failed(exc)

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

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # other processes: nobody appends while we may cut
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

    def read(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """The logged decisions (since a time, if given); lines that do not parse are skipped."""
        if not self.path.exists():
            return []
        out, bad = [], 0
        with self.path.open("rb") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if since is None or datetime.fromisoformat(record["at"]) >= since:
                    out.append(record)
        if bad:
            log.warning("%s: skipped %d unreadable lines", self.path, bad)
        return out


def _why(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror or exc}" if name else str(exc)
