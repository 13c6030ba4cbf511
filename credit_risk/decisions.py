"""The decision log: one JSON line per scored application (inputs, PD, score, model version)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

try:  # orjson (in the serving extra) is several times faster on batches
    import orjson

    def _line(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE
                            | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
except ImportError:  # pragma: no cover - the library works without it
    def _line(record: dict[str, Any]) -> bytes:
        return (json.dumps(record, default=str) + "\n").encode()


class DecisionLog:
    """Appends whole lines with O_APPEND, so several workers can share one file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, request_id: str, inputs: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> None:
        now = datetime.now(UTC).isoformat()
        lines = b"".join(
            _line({"at": now, "request_id": request_id, "inputs": i, **r})
            for i, r in zip(inputs, results, strict=True)
        )
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(lines)
                while view:  # a short write must not leave half a line
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)

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
