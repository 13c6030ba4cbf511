"""The files the pages may serve: an allow-list of reports, each reached without a symlink.

Never a run's raw tables, splits or fitted candidates, never a version's pickles or its
reference sample of training data. Anything else, however the path is spelled, is NotServed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from credit_risk.pipeline.run_paths import MONITORING, RunPaths

# Paths relative to a training run folder (<runs>/<run>/), a monitoring run folder
# (<runs>/monitoring/<run>/) or a registry version.
_RUN = RunPaths(Path())  # a run folder's layout, relative to the folder
COMPARISON = _RUN.comparison.as_posix()
RELIABILITY = _RUN.reliability.as_posix()
VALIDATION_RESULT = (_RUN.validation / "validation.json").as_posix()
RUN_REPORTS = {COMPARISON, RELIABILITY, VALIDATION_RESULT}
GX_RESULTS = (_RUN.validation / "gx_results").as_posix()  # one <suite>.json per suite
DATA_DOCS = (_RUN.validation / "data_docs").as_posix()  # Great Expectations' static site
DATA_DOCS_INDEX = f"{DATA_DOCS}/index.html"
DATA_DOCS_SUFFIXES = {".html", ".css", ".js", ".png", ".jpg", ".gif", ".svg", ".ico", ".otf",
                      ".ttf", ".woff", ".woff2"}
# A monitoring run: drift and its plots, performance on matured loans and its plot.
DRIFT_REPORTS = {"drift.json", "drift_report.html", "psi.png", "performance.json",
                 "performance.png"}
MODEL_REPORTS = {"model_card.html", "model_card.md", "reliability.png", "comparison.json",
                 "validation.json", "data_docs.zip", "validation_report.json",
                 "validation_report.png"}
# One path segment: the characters of Airflow run ids, version ids and report names; never
# empty, ".", "..", a hidden name, a separator or an escape.
SEGMENT = re.compile(r"(?!\.)[A-Za-z0-9_.~:+@=-]+\Z")


class NotServed(LookupError):
    """A path the pages do not serve (answered as a 404)."""


def is_report(run: str, path: str) -> bool:
    """Whether `path` of run folder `run` (or of monitoring/<run>/) is a servable report."""
    parts = path.split("/")
    if not all(SEGMENT.match(p) for p in [run, *parts]):
        return False
    if run == MONITORING:
        return len(parts) == 2 and parts[1] in DRIFT_REPORTS
    folder, name = "/".join(parts[:-1]), parts[-1]
    return (path in RUN_REPORTS
            or (folder == GX_RESULTS and name.endswith(".json"))
            or ((folder == DATA_DOCS or folder.startswith(DATA_DOCS + "/"))
                and Path(name).suffix.lower() in DATA_DOCS_SUFFIXES))


def real_path(base: Path, *parts: str, folder: bool = False) -> Path:
    """base/parts, a regular file (or folder) reached without a symlink below base."""
    if not parts or not all(SEGMENT.match(p) for p in parts):
        raise NotServed("/".join(parts))
    path = base.resolve().joinpath(*parts)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotServed("/".join(parts)) from None
    if real != path or not (real.is_dir() if folder else real.is_file()):
        raise NotServed("/".join(parts))
    return real


class RunsFolder:
    """The run folders: a local folder (no symlinks followed) or an object store URL."""

    def __init__(self, base: Path | str):
        self.url = str(base) if "://" in str(base) else None
        self.base = Path(base) if self.url is None else None
        self._store: tuple[Any, str] | None = None

    @property
    def _fs(self) -> tuple[Any, str]:
        """(filesystem, root) of an object store URL, opened on first use."""
        if self._store is None:
            import fsspec

            self._store = fsspec.core.url_to_fs(self.url)
        return self._store

    def _key(self, parts: tuple[str, ...]) -> str:
        if not parts or not all(SEGMENT.match(p) for p in parts):
            raise NotServed("/".join(parts))
        return "/".join([self._fs[1].rstrip("/"), *parts])

    def folders(self, *under: str) -> list[tuple[str, float]]:
        """(name, modified) of the run folders under `under`, newest first."""
        if self.base is not None:
            found = [(p.name, p.stat().st_mtime) for p in self.base.joinpath(*under).glob("*/")
                     if SEGMENT.match(p.name) and not p.is_symlink()]
        else:
            fs, root = self._fs
            try:
                entries = fs.ls("/".join([root.rstrip("/"), *under]), detail=True)
            except FileNotFoundError:
                entries = []
            names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries
                     if e.get("type") == "directory"]
            found = [(n, self._modified(n, *under)) for n in names if SEGMENT.match(n)]
        return sorted(found, key=lambda x: x[1], reverse=True)

    def _modified(self, name: str, *under: str) -> float:
        """A folder's time on an object store (which has none): its newest file's."""
        fs, root = self._fs
        key = "/".join([root.rstrip("/"), *under, name])
        times = [e.get("LastModified") or e.get("mtime")
                 for e in fs.find(key, maxdepth=2, detail=True).values()]
        stamps = [t.timestamp() if hasattr(t, "timestamp") else float(t or 0) for t in times]
        return max(stamps, default=0.0)

    def is_folder(self, *parts: str) -> bool:
        """Whether parts name a run folder (locally: reached without a symlink)."""
        if self.base is None:
            return bool(self._fs[0].isdir(self._key(parts)))
        try:
            real_path(self.base, *parts, folder=True)
        except NotServed:
            return False
        return True

    def is_file(self, *parts: str) -> bool:
        """Whether parts name a file that may be read."""
        try:
            self.local_or_none(*parts)
        except NotServed:
            return False
        return True

    def local_or_none(self, *parts: str) -> Path | None:
        """The local file (None on an object store, checked there); NotServed if no file."""
        if self.base is not None:
            return real_path(self.base, *parts)
        if not self._fs[0].isfile(self._key(parts)):
            raise NotServed("/".join(parts))
        return None

    def read(self, *parts: str) -> bytes:
        """A file's bytes; NotServed if it is not a file."""
        local = self.local_or_none(*parts)
        return local.read_bytes() if local is not None else self._fs[0].cat_file(self._key(parts))
