"""The PostgreSQL decision log behind a write-ahead spool (`CREDIT_RISK_DECISION_LOG_SPOOL`, a
folder on the serving container's volume): a decision is answered once it is fsync'd in the
spool (`spool.SpoolWriter`, one fdatasync per group of waiting requests), and a background
shipper (`shipper.Shipper`) copies it to the database, each decision stored once by its
decision id. While the database is down, decisions are still answered from the spool and
shipped when it is back; when the spool cannot write (disk full, read-only), the answer is 503.

Reads (drift, audits, `credit-risk decisions`) go to the database: they see a decision once it
is shipped (normally within a fraction of a second, later after an outage).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from credit_risk.records.decisions import (
    CHUNK_ROWS,
    DecisionLog,
    DecisionLogError,
    decision_lines,
)
from credit_risk.records.decisions_pg import PostgresDecisionLog
from credit_risk.records.jsonl import why
from credit_risk.records.shipper import Shipper
from credit_risk.records.spool import SpoolWriter, fsync_dir

log = logging.getLogger(__name__)


class SpooledDecisionLog(DecisionLog):
    """Writes to the spool, reads from `target`. Starts its shipper at once: segments left by
    a killed worker or an earlier container are shipped even before the first request."""

    def __init__(self, target: PostgresDecisionLog, folder: Path | str, *,
                 ship_interval_s: float = 0.1, sync_timeout_s: float = 5.0):
        super().__init__()
        self.target = target
        self.folder = Path(folder)
        self.writer = SpoolWriter(self.folder, sync_timeout_s=sync_timeout_s)
        self.shipper = Shipper(self.writer, target.db, target.health,
                               interval_s=ship_interval_s)
        self._probe_lock = threading.Lock()
        self._last_probe = 0.0
        self._pid = os.getpid()
        self.shipper.start()

    def describe(self) -> str:
        return f"{self.target.describe()} (spool {self.folder})"

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Append one line per decision to the spool and return once they are durable."""
        if os.getpid() != self._pid:  # a forked child ships its own segments
            self._pid = os.getpid()
            self.shipper = Shipper(self.writer, self.target.db, self.target.health,
                                   interval_s=self.shipper.interval_s)
            self.shipper.start()
        now = datetime.now(UTC).isoformat()
        call = uuid.uuid4().hex
        try:
            lines = decision_lines(now, request_id, inputs, results, [
                {"decision_id": f"{call}-{k}", "at": now, "request_id": request_id,
                 "inputs": i, "result": r}
                for k, (i, r) in enumerate(zip(inputs, results, strict=True))])
        except ValidationError as exc:
            raise DecisionLogError(f"decision log {self.describe()}: not a decision record: "
                                   f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
        except TypeError as exc:  # what JSON cannot hold (a lone surrogate)
            raise DecisionLogError(f"decision log {self.describe()}: {exc}") from exc
        if b"\\u0000" in lines:  # the database's JSONB refuses NUL: it could never be shipped
            raise DecisionLogError(f"decision log {self.describe()}: a NUL character, which "
                                   "the database cannot store")
        if not lines:
            return
        try:
            self.writer.append(lines)
        except OSError as exc:
            self.health.failed(why(exc))
            log.error("decision spool %s cannot be written: %s", self.folder, why(exc))
            raise DecisionLogError(f"decision spool {self.folder}: {why(exc)}") from exc
        self.health.failing = False

    def ok(self, min_interval_s: float | None = None) -> bool:
        """Ready while the spool can be written (the database may be down meanwhile: its
        decisions wait in the spool). While failing, a probe at most once per interval: a
        file of a few KB written, fsynced and removed."""
        if not self.failing:
            return True
        interval = self.probe_interval_s if min_interval_s is None else min_interval_s
        with self._probe_lock:
            now = time.monotonic()
            if now - self._last_probe < interval:
                return not self.failing
            self._last_probe = now
            probe = self.folder / f".probe-{os.getpid()}"
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, b"\0" * 4096)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                fsync_dir(self.folder)
            except OSError as exc:
                self.health.last_error = why(exc)
                return False
            finally:
                try:
                    probe.unlink(missing_ok=True)
                except OSError:
                    pass  # no folder: nothing was made
            self.health.failing = False
            return True

    def status(self) -> dict[str, Any]:
        """The spool's backlog and, while shipping fails, why (decisions are still answered
        meanwhile: this is where an operator sees that they are not reaching the database)."""
        return {"unshipped_bytes": self.pending_bytes(),
                "shipping_error": self.target.last_error if self.target.failing else None}

    def pending_bytes(self) -> int:
        """Bytes in the spool not yet in the database."""
        return self.shipper.backlog_bytes()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Ship now, until the spool is empty or `timeout_s` passes; whether it is empty."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.shipper.ship_once() is not None and self.pending_bytes() == 0:
                return True
            time.sleep(0.05)
        return False

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    model_versions: Collection[str] | None = None,
                    chunk_rows: int = CHUNK_ROWS,
                    columns: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """The shipped decisions (see the database log)."""
        return self.target.iter_chunks(since, until, model_versions=model_versions,
                                       chunk_rows=chunk_rows, columns=columns)

    def count(self, since: datetime | None = None, until: datetime | None = None) -> int:
        return self.target.count(since, until)

    def prune(self, before: datetime) -> int:
        return self.target.prune(before)

    def migrate(self) -> str | None:
        return self.target.migrate()

    def close(self) -> None:
        """Stop the shipper after one last pass (bounded), release the spool (what is left is
        shipped by the next process), close the database."""
        self.shipper.stop(self.target.commit_timeout_s + 5)
        if self._pid == os.getpid():
            try:
                self.shipper.ship_once()
            finally:
                self.writer.close()
        self.target.close()
