"""The write-ahead spool of a serving worker: decisions appended to a local segment file and
made durable with one fdatasync for every request waiting at that moment (group fsync), before
they are answered. `shipper.Shipper` moves them to PostgreSQL.

A segment is `segment-<ns>-<pid>.jsonl` in the spool folder, one JSON line per decision, held
under an exclusive flock by the process that writes it: when that process dies (SIGKILL, a
container restart) the kernel drops the lock, and the segment becomes an orphan that any
shipper adopts. A failed append is cut back to the size before it (no half line stays); a
failed fdatasync leaves the segment's tail in doubt (the kernel may have dropped the dirty
pages), so its waiters are refused and the next write starts a new segment.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from credit_risk.records.jsonl import write_all

PREFIX, SUFFIX = "segment-", ".jsonl"


@dataclass
class Segment:
    """One open segment of this process: its file, descriptor (locked) and how far it is
    written and known durable."""

    path: Path
    fd: int
    written: int = 0
    synced: int = 0
    broken: bool = False  # an fdatasync failed: nothing more goes here
    closed: bool = field(default=False)


def segment_name() -> str:
    return f"{PREFIX}{time.time_ns():020d}-{os.getpid()}{SUFFIX}"


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolWriter:
    """Appends to this process's current segment; `append` returns once the bytes are on disk
    (fdatasync), shared by every thread waiting at that moment."""

    def __init__(self, folder: Path | str, *, sync_timeout_s: float = 5.0):
        self.folder = Path(folder)
        self.sync_timeout_s = sync_timeout_s
        self._cond = threading.Condition()
        self._syncing = False
        self.current: Segment | None = None
        self.retired: list[Segment] = []  # rotated away, still ours until shipped
        self.syncs = 0  # fdatasync calls (one per group)
        self.pid = os.getpid()

    def _open(self) -> Segment:
        """A new segment, locked, its name made durable in the folder (lock held)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / segment_name()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     0o640)  # read too: the shipper reads it through this descriptor
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fsync_dir(self.folder)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return Segment(path, fd)

    def append(self, data: bytes) -> None:
        """Write whole lines and wait until they are durable; OSError (nothing of them is
        promised; a failed write is cut back) otherwise."""
        with self._cond:
            if self.pid != os.getpid():  # a forked child: the parent's segment is not ours
                self.pid, self.current, self.retired = os.getpid(), None, []
                self._syncing = False
            seg = self.current
            if seg is None or seg.broken:
                seg = self.current = self._rotate(seg)
            start = seg.written
            try:
                write_all(seg.fd, data)
            except OSError:
                try:
                    os.ftruncate(seg.fd, start)
                except OSError:
                    seg.broken = True  # a partial line may stay: no more appends here
                raise
            seg.written = end = start + len(data)
            self._wait_durable(seg, end)

    def _rotate(self, old: Segment | None) -> Segment:
        """A fresh segment (lock held); the old one stays ours, for the shipper."""
        new = self._open()
        if old is not None:
            old.closed = True
            self.retired.append(old)
        return new

    def _wait_durable(self, seg: Segment, end: int) -> None:
        """Until seg.synced >= end: lead an fdatasync when none runs, else wait for the one
        running (lock held)."""
        deadline = time.monotonic() + self.sync_timeout_s
        while seg.synced < end:
            if seg.broken:
                raise OSError(errno.EIO, f"{seg.path.name}: an fdatasync failed")
            if self._syncing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OSError(errno.ETIMEDOUT, f"not durable within {self.sync_timeout_s} s")
                self._cond.wait(remaining)
                continue
            self._syncing = True
            upto = seg.written
            self._cond.release()
            error: OSError | None = None
            try:
                os.fdatasync(seg.fd)
            except OSError as exc:
                error = exc
            finally:
                self._cond.acquire()
                self._syncing = False
                self.syncs += 1
                self._cond.notify_all()
            if error is not None:
                seg.broken = True
                raise error
            seg.synced = max(seg.synced, upto)

    def durable(self) -> list[tuple[Segment, int]]:
        """This process's segments and how far each may be shipped (durable bytes)."""
        with self._cond:
            if self.pid != os.getpid():
                return []
            out = [(s, s.synced) for s in self.retired]
            if self.current is not None:
                out.append((self.current, self.current.synced))
            return out

    def rotate_if_shipped(self, shipped: int, max_bytes: int) -> None:
        """Start a new segment once the current one is over `max_bytes` and all shipped."""
        with self._cond:
            seg = self.current
            if (seg is not None and not self._syncing and seg.written >= max_bytes
                    and shipped >= seg.written):
                self.current = self._rotate(seg)

    def forget(self, seg: Segment) -> None:
        """A retired segment fully shipped: delete it and release it."""
        with self._cond:
            if seg in self.retired:
                self.retired.remove(seg)
        seg.path.unlink(missing_ok=True)
        os.close(seg.fd)

    def close(self) -> None:
        """Release the segments (their locks too): what is unshipped is an orphan for the
        next shipper."""
        with self._cond:
            if self.pid != os.getpid():
                return
            for seg in [*self.retired, *([self.current] if self.current else [])]:
                try:
                    os.close(seg.fd)
                except OSError:
                    pass
            self.current, self.retired = None, []
