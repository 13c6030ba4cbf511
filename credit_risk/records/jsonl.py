"""Append-only JSON-lines files shared by several processes: whole appends under an exclusive
lock, atomic rewrites, a writability probe. The decision log and the outcomes use it."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

try:  # orjson (in the serving extra) is several times faster on batches
    import orjson

    def dumps_line(record: dict[str, Any]) -> bytes:
        """One record as a JSON line (newline included)."""
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE
                            | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)

    def plain_lines(records: list[dict[str, Any]]) -> bytes:
        """`dumps_line` of each record, joined, for records its options would not change:
        TypeError unless every key is a `str` and every value of a type JSON has (no NumPy
        value, nothing for `default`). A third faster than with them."""
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        return b"".join([dumps(r, option=newline) for r in records])

    def dumps_lines(records: list[dict[str, Any]]) -> bytes:
        """`dumps_line` of each record, joined (`plain_lines` when it can)."""
        try:
            return plain_lines(records)
        except TypeError:
            return b"".join([dumps_line(r) for r in records])

    def loads_line(line: bytes) -> Any:
        """One JSON line; NaN, which orjson refuses, through the json module."""
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:
            return json.loads(line)
except ImportError:  # pragma: no cover - the library works without it
    def dumps_line(record: dict[str, Any]) -> bytes:
        return (json.dumps(record, default=str) + "\n").encode()

    def loads_line(line: bytes) -> Any:
        return json.loads(line)

    def plain_lines(records: list[dict[str, Any]]) -> bytes:
        raise TypeError("no orjson: nothing proves the keys are strings")

    def dumps_lines(records: list[dict[str, Any]]) -> bytes:
        return b"".join([dumps_line(r) for r in records])


def why(exc: OSError) -> str:
    """An OS error as `ENOSPC: No space left on device`."""
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror or exc}" if name else str(exc)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte (a short write continues; no progress is an error)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "write returned no progress")
        view = view[written:]


class JsonlFile:
    """One JSON-lines file. `append` adds whole lines or none (a failed write is cut back to
    the size before it); `fsync` makes an append durable before it returns."""

    PROBE_BYTES = 4096

    def __init__(self, path: Path | str, *, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync

    @contextmanager
    def locked(self, flags: int) -> Iterator[int]:
        """The file open and exclusively locked: the file at the path, not one a rewrite has
        just replaced (other processes neither append nor rewrite while it is held)."""
        for _ in range(100):
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:  # no folder yet: made when the file is to be created
                if not flags & os.O_CREAT:
                    raise
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, flags, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                except FileNotFoundError:
                    now = None
                if now is not None and (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # replaced while we waited: open the new file
        else:
            raise OSError(errno.EAGAIN, f"{self.path} keeps being replaced")
        try:
            yield fd
        finally:
            os.close(fd)  # also releases the lock

    def append(self, data: bytes, fd: int | None = None) -> None:
        """Append whole lines under the lock (or on `fd`, already locked); on any error the
        file is cut back to its size before, so no half line stays."""
        if fd is None:
            with self.locked(os.O_WRONLY | os.O_APPEND | os.O_CREAT) as locked:
                self.append(data, locked)
            return
        start = os.fstat(fd).st_size
        try:
            write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, start)
            except OSError as exc:
                log.critical("%s: cannot cut a partial write back to %d bytes: %s",
                             self.path, start, exc)
            raise

    def lines(self) -> Iterator[bytes]:
        """The file's lines as stored (none when it does not exist)."""
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            yield from fh

    def rewrite(self, keep: Callable[[bytes], bool]) -> int:
        """Drop the lines `keep` refuses, atomically: the kept lines go to a temporary file
        beside it, fsynced and renamed over it under the writers' lock (a writer that waited
        appends to the new file). The number of lines dropped."""
        if not self.path.exists():
            return 0
        tmp = self.path.with_name(f".{self.path.name}.rewrite-{os.getpid()}")
        dropped = 0
        with self.locked(os.O_RDONLY) as fd:
            mode = os.fstat(fd).st_mode & 0o7777
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                with os.fdopen(os.dup(fd), "rb") as src, os.fdopen(out, "wb") as dst:
                    for line in src:
                        if keep(line):
                            dst.write(line)
                        else:
                            dropped += 1
                    dst.flush()
                    os.fsync(dst.fileno())
                if dropped:
                    os.replace(tmp, self.path)
                    _fsync_dir(self.path.parent)
            finally:
                tmp.unlink(missing_ok=True)
        return dropped

    def probe(self) -> None:
        """OSError unless the file opens for appending and a few KB fit beside it (written to
        a temporary file, nothing is added to the log)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        probe = self.path.with_name(f".{self.path.name}.probe-{os.getpid()}")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(fd, b"\0" * self.PROBE_BYTES)
            finally:
                os.close(fd)
        finally:
            probe.unlink(missing_ok=True)


def read_locked(fd: int) -> IO[bytes]:
    """A reader over a locked file from its start (its own descriptor: closing it keeps the
    lock)."""
    fh = os.fdopen(os.dup(fd), "rb")
    fh.seek(0)
    return fh


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
