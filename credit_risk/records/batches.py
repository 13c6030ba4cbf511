"""Batches in the decision log: a run of `credit-risk predict --log` is ONE batch record plus
its decisions, compressed (gzip: readable with `zcat`, checked by its CRC and a SHA-256).

`BatchRows` collects a run's decisions as they are scored (it is the `DecisionLog` that
`credit_risk.scoring.decide` writes to): each row is checked as a `Decision`, then written as
one JSON line, without what every row of the batch shares (time, run id, model version), into
a gzip stream on a temporary file. `Batch` is the record the log keeps: when, which run and
model, how many rows were scored and failed, which input (name, size, SHA-256), and the rows'
codec, size and SHA-256. The backends store the two (JSONL: a side file beside the log;
PostgreSQL: a `decision_batches` row) and give the rows back as decisions (`rows_of`), so
drift, performance and retention see a batch's decisions as any others.

A batch whose rows do not match their SHA-256 (damaged, or edited without its record) or do
not decompress raises `BatchError`; readers log it and skip that batch, not the others.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from credit_risk.records.decisions import DecisionLogError, check_decisions
from credit_risk.records.jsonl import dumps_lines, loads_line

CODEC = "gzip"
COMPRESS_LEVEL = 6  # zlib's default: about 10x smaller than the JSON lines
COPY_BYTES = 1 << 20
_SHARED = ("at", "request_id", "model_version")  # in the batch record, not in each row


class BatchError(DecisionLogError):
    """A batch's rows cannot be read back (missing, damaged, edited): the batch is skipped."""


class Batch(BaseModel):
    """The record of one batch: the run, its counts, its input, and where its rows are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime  # when the batch was recorded: its decisions' time
    request_id: str = Field(min_length=1)  # the run id
    model_version: str | None = None
    started_at: AwareDatetime | None = None
    rows: int = Field(ge=0)  # decisions stored: the rows scored
    failed: int = Field(0, ge=0)  # rows not scored (not decisions: not stored)
    input_name: str | None = None
    input_bytes: int | None = None
    input_sha256: str | None = None
    codec: str = CODEC
    bytes: int = Field(ge=0)  # of the compressed rows
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # of the compressed rows
    file: str | None = None  # JSONL: the rows' file, relative to the log's folder

    def describe(self) -> str:
        return f"batch {self.request_id} of {self.at.isoformat()} ({self.rows:,} decisions)"


class BatchRows:
    """A batch's decisions as they are scored, compressed into a temporary file. `write` has
    the signature of `DecisionLog.write`; `finish` gives the `Batch` record (without `file`)."""

    def __init__(self, request_id: str, started_at: datetime):
        self.request_id = request_id
        self.started_at = started_at
        self.rows = 0
        self.model_versions: set[str] = set()
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._gzip = gzip.GzipFile(fileobj=self.file, mode="wb", compresslevel=COMPRESS_LEVEL,
                                   mtime=0)

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        """Add decisions (each checked as a `Decision`, as the log's own `write` does)."""
        try:
            check_decisions(self.started_at, request_id, inputs, results)
        except ValidationError as exc:
            raise DecisionLogError(f"not a decision record: {exc.errors()[0]['loc']}: "
                                   f"{exc.errors()[0]['msg']}") from exc
        self.model_versions.update(str(v) for r in results
                                   if (v := r.get("model_version")) is not None)
        self._gzip.write(dumps_lines([{"inputs": i, **{k: v for k, v in r.items()
                                                       if k not in _SHARED}}
                                      for i, r in zip(inputs, results, strict=True)]))
        self.rows += len(results)

    def finish(self, at: datetime, *, failed: int = 0, input_path: Path | None = None,
               model_version: str | None = None) -> Batch:
        """Close the stream and describe the batch (`input_path`: its name, size, SHA-256;
        `model_version`: the model's, when no row was scored to tell it)."""
        if len(self.model_versions) > 1:
            raise DecisionLogError(f"one batch, several models: {sorted(self.model_versions)}")
        self._gzip.close()
        self.file.flush()
        size = self.file.tell()
        self.file.seek(0)
        digest = sha256_of(self.file)
        self.file.seek(0)
        described: dict[str, Any] = {}
        if input_path is not None:
            with input_path.open("rb") as fh:
                described = {"input_name": input_path.name,
                             "input_bytes": os.fstat(fh.fileno()).st_size,
                             "input_sha256": sha256_of(fh)}
        return Batch(at=at, request_id=self.request_id, started_at=self.started_at,
                     model_version=next(iter(self.model_versions), model_version),
                     rows=self.rows,
                     failed=failed, bytes=size, sha256=digest, **described)

    def close(self) -> None:
        self._gzip.close()
        self.file.close()


def sha256_of(fh: IO[bytes]) -> str:
    """The SHA-256 of what is left to read of a file."""
    digest = hashlib.sha256()
    while block := fh.read(COPY_BYTES):
        digest.update(block)
    return digest.hexdigest()


def check(batch: Batch, fh: IO[bytes], where: str) -> None:
    """BatchError unless the rows at `fh` (read from its start) are the batch's own."""
    if batch.codec != CODEC:
        raise BatchError(f"{where}: {batch.describe()}: codec {batch.codec!r} is not {CODEC}")
    fh.seek(0)
    digest = sha256_of(fh)
    size = fh.tell()
    fh.seek(0)
    if digest != batch.sha256 or size != batch.bytes:
        raise BatchError(f"{where}: {batch.describe()}: its rows do not match their SHA-256 "
                         "(damaged, or edited without the batch record): skipped")


def rows_of(batch: Batch, fh: IO[bytes], where: str,
            keys: tuple[str, ...] | None = None) -> Iterator[dict[str, Any]]:
    """The batch's decisions, checked first (`check`), as `iter_chunks` gives decisions:
    whole records, or cut to `keys`."""
    check(batch, fh, where)
    shared = {"at": batch.at.astimezone(UTC).isoformat(), "request_id": batch.request_id,
              "model_version": batch.model_version}
    try:
        with gzip.GzipFile(fileobj=fh, mode="rb") as rows:
            for line in rows:
                record = {**shared, **loads_line(line)}
                yield record if keys is None else {k: record.get(k) for k in keys}
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise BatchError(f"{where}: {batch.describe()}: its rows cannot be read: {exc}") \
            from exc


def batch_of(record: dict[str, Any]) -> Batch | None:
    """The `Batch` of a JSONL batch line ({"batch": {...}}), None for a decision line;
    ValidationError when it is a batch line that does not hold."""
    body = record.get("batch") if isinstance(record, dict) else None
    if body is None:
        return None
    return Batch.model_validate(body)


def file_name(request_id: str, unique: str) -> str:
    """A side file's name: the run id in safe characters, and a unique part."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", request_id)[:80].lstrip(".") or "batch"
    return f"{safe}-{unique}.jsonl.gz"


class SideFiles:
    """A JSONL decision log's batch rows: one file per batch in `<log name>.batches/` beside
    the log, named in the batch record (relative to the log's folder)."""

    def __init__(self, log_path: Path):
        self.root = log_path.parent
        self.folder = log_path.with_name(log_path.name + ".batches")

    def store(self, rows: BatchRows, batch: Batch) -> Batch:
        """Copy the rows into their file (written whole, fsynced, then renamed into place):
        the batch record that names it."""
        from uuid import uuid4

        self.folder.mkdir(parents=True, exist_ok=True)
        name = file_name(batch.request_id, uuid4().hex[:12])
        part = self.folder / f".{name}.part"
        rows.file.seek(0)
        try:
            with part.open("xb") as out:
                while block := rows.file.read(COPY_BYTES):
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            part.replace(self.folder / name)
        finally:
            part.unlink(missing_ok=True)
        return batch.model_copy(update={"file": f"{self.folder.name}/{name}"})

    def path(self, batch: Batch) -> Path:
        """The rows' file; BatchError when the record names none or one outside the folder."""
        if not batch.file:
            raise BatchError(f"{batch.describe()}: the record names no rows file")
        path = (self.root / batch.file).resolve()
        if path.parent != self.folder.resolve():
            raise BatchError(f"{batch.describe()}: rows file {batch.file!r} is not in "
                             f"{self.folder}: refused")
        return path

    def open(self, batch: Batch) -> IO[bytes]:
        path = self.path(batch)
        try:
            return path.open("rb")
        except OSError as exc:
            raise BatchError(f"{batch.describe()}: rows file {path}: "
                             f"{exc.strerror or exc}") from exc

    def remove(self, names: Sequence[str]) -> None:
        """Delete rows files (named as in batch records); one already gone is no error."""
        for name in names:
            path = (self.root / name).resolve()
            if path.parent == self.folder.resolve():
                path.unlink(missing_ok=True)

    def orphans(self, kept: set[str], before: datetime) -> list[str]:
        """Rows files no kept record names, last written before `before` (a run that stopped
        between writing its rows and its record): names as records give them."""
        if not self.folder.is_dir():
            return []
        cutoff = before.timestamp()
        return [f"{self.folder.name}/{p.name}" for p in self.folder.iterdir()
                if p.is_file() and f"{self.folder.name}/{p.name}" not in kept
                and p.stat().st_mtime < cutoff]
