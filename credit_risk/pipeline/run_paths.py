"""The folders and files of a pipeline run, named in one place, and their reading and writing.

A training run (``<runs>/<run>/``)::

    raw/snapshot.json, raw/<table>.parquet         ingest: the immutable snapshot
    validation/validation.json, gx_results/, ...   validate: the GX result and Data Docs
    split/train.parquet, test.parquet, split.json  prepare: the one split
    candidates/<model>.joblib                      train: one fitted candidate each
    comparison.json, reliability.png               compare: every candidate on the test set

A monitoring run: ``<runs>/monitoring/<run>/drift.json`` and ``drift_report.html``.

Every run folder is found here: `RunPaths.for_run` (a training run, by its run id),
`monitoring_dir` (a monitoring run), `RunPaths.of` (the run a path lies in).

Steps still hand each other plain path strings (Airflow passes them through XCom);
`RunPaths.of` finds the run a path belongs to.

The runs folder is a local folder (a `Path`, as it always was) or an fsspec URL such as
``s3://bucket/runs`` (CREDIT_RISK_RUNS_DIR; s3fs, the `s3` extra), kept as a string: then every
path of a run is a URL string, the steps read and write through fsspec (pandas Parquet
directly, JSON and joblib files through `fsspec.open`), and tasks on other hosts find the same
files. The helpers below take either and do for a local path exactly what pathlib does.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    from credit_risk.config import Settings

SNAPSHOT_FILE = "snapshot.json"  # in the raw folder: what ingest wrote (tables, fingerprints)
MONITORING = "monitoring"  # <runs>/monitoring/<run>/: the drift checks, not training runs

P = TypeVar("P", Path, str)  # a local path, or an fsspec URL string


def is_url(path: Path | str) -> bool:
    """Whether a path is an fsspec URL (s3://bucket/...), not a local path."""
    return isinstance(path, str) and "://" in path


def local_or_url(path: Path | str) -> Path | str:
    """A URL string as it is; anything else as a local Path."""
    return path if is_url(path) else Path(path)


@overload
def join(base: Path, *parts: str) -> Path: ...
@overload
def join(base: str, *parts: str) -> str: ...
@overload
def join(base: Path | str, *parts: str) -> Path | str: ...
def join(base: Path | str, *parts: str) -> Path | str:
    """`base / part / ...`: a Path for a Path, a URL string for a URL (a local path given as a
    string becomes a Path)."""
    if isinstance(base, str) and is_url(base):
        return "/".join([base.rstrip("/"), *parts])
    return Path(base).joinpath(*parts)


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url)


def exists(path: Path | str) -> bool:
    if isinstance(path, str) and is_url(path):
        fs, p = _fs(path)
        fs.invalidate_cache(p)  # another host may have written it since
        return bool(fs.exists(p))
    return Path(path).exists()


def makedirs(path: Path | str) -> None:
    """Create a folder (object stores have none: nothing to do)."""
    if not is_url(path):
        Path(path).mkdir(parents=True, exist_ok=True)


def open_file(path: Path | str, mode: str = "rb") -> IO[Any]:
    """A file object for reading or writing, local or through fsspec."""
    if isinstance(path, str) and is_url(path):
        import fsspec

        return fsspec.open(path, mode).open()
    return open(path, mode)  # noqa: SIM115 - the caller closes it


def read_bytes(path: Path | str) -> bytes:
    if isinstance(path, str) and is_url(path):
        fs, p = _fs(path)
        return bytes(fs.cat_file(p))
    return Path(path).read_bytes()


def read_text(path: Path | str) -> str:
    return read_bytes(path).decode() if is_url(path) else Path(path).read_text()


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write a file whole (one PUT on an object store: readers see all of it or nothing)."""
    if isinstance(path, str) and is_url(path):
        fs, p = _fs(path)
        fs.pipe_file(p, data)
        return
    Path(path).write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    if is_url(path):
        write_bytes(path, text.encode())
    else:
        Path(path).write_text(text)


def upload_dir(local: Path, url: str) -> None:
    """Copy a local folder to a URL, replacing what was there (a re-run's result)."""
    fs, p = _fs(url)
    if fs.exists(p):
        fs.rm(p, recursive=True)
    for file in sorted(f for f in local.rglob("*") if f.is_file()):
        fs.put_file(str(file), f"{p}/{file.relative_to(local).as_posix()}")


def download_dir(url: str, local: Path) -> bool:
    """Copy the files under a URL into a local folder; False when there are none."""
    fs, p = _fs(url)
    fs.invalidate_cache(p)
    names = [f for f in fs.find(p) if f != p]
    for name in names:
        target = local / posixpath.relpath(name, p)
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(target))
    return bool(names)


def run_folder_name(run_id: str) -> str:
    """A run id made safe as a folder name (Airflow's ids hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def _name(path: Path | str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] if isinstance(path, str) else path.name


@dataclass(frozen=True)
class RunPaths(Generic[P]):
    """The layout of one training run folder: Paths for a local folder, URL strings for one
    on an object store."""

    root: P

    # Top-level entries of a run folder; `of` recognises a path by the one it lies in.
    _DIRS = ("raw", "validation", "split", "candidates")
    _FILES = ("comparison.json", "reliability.png")

    @classmethod
    def for_run(cls, settings: Settings, run_id: str) -> RunPaths[Any]:
        """The folder of one pipeline run under the runs folder: Paths, or URL strings when
        the runs folder is an object store URL."""
        return RunPaths(join(local_or_url(settings.data.runs_dir), run_folder_name(run_id)))

    @classmethod
    def for_local_run(cls, settings: Settings, run_id: str) -> RunPaths[Path]:
        """A run folder that must be local (what writes through plain files); a clear error
        when the runs folder is an object store URL."""
        return RunPaths(settings.local_runs_dir / run_folder_name(run_id))

    @classmethod
    def of(cls, path: str | Path) -> RunPaths[Any]:
        """The run a path inside a run folder belongs to (a snapshot, the split folder, a
        candidate, the comparison, the validation result...)."""
        if isinstance(path, str) and is_url(path):
            scheme, rest = path.split("://", 1)
            parts = rest.rstrip("/").split("/")
            for i in range(len(parts) - 1, 0, -1):
                if parts[i] in cls._DIRS or parts[i] in cls._FILES:
                    return RunPaths(f"{scheme}://{'/'.join(parts[:i])}")
            raise ValueError(f"{path} is not inside a run folder")
        inside: Path = Path(path)
        for p in (inside, *inside.parents):
            if p.name in cls._DIRS or p.name in cls._FILES:
                return RunPaths(p.parent)
        raise ValueError(f"{inside} is not inside a run folder")

    @property
    def name(self) -> str:
        return _name(self.root)

    @property
    def raw(self) -> P:
        return join(self.root, "raw")

    @property
    def snapshot(self) -> P:
        return join(self.raw, SNAPSHOT_FILE)

    @property
    def validation(self) -> P:
        return join(self.root, "validation")

    @property
    def split(self) -> P:
        return join(self.root, "split")

    @property
    def candidates(self) -> P:
        return join(self.root, "candidates")

    def candidate(self, model_name: str) -> P:
        return join(self.candidates, f"{model_name}.joblib")

    @property
    def comparison(self) -> P:
        return join(self.root, "comparison.json")

    @property
    def reliability(self) -> P:
        return join(self.root, "reliability.png")


def monitoring_dir(settings: Settings, run_id: str) -> Path | str:
    """The folder of one monitoring run (named by the run id as it is: Airflow's ids)."""
    return join(local_or_url(settings.data.runs_dir), MONITORING, run_id)
