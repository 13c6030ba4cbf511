"""Model registry on an fsspec URL: immutable versions, checksummed files, atomic aliases.

Layout under the registry root::

    models/<version>/manifest.json   written last; a version without it does not exist
    models/<version>/model.joblib    the fitted pipeline (features + model + calibrator)
    models/<version>/...             reports, model card
    aliases/<alias>.json             {"version", "set_at", "by", "reason"}; replaced atomically
    history/<time>-<alias>.json      one file per alias change: who, when, why
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import joblib
from fsspec.implementations.local import LocalFileSystem

MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"


class RegistryError(RuntimeError):
    """A version or alias is missing or inconsistent."""


class ChecksumError(RegistryError):
    """A file of a version does not match the SHA-256 in its manifest."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    def __init__(self, url: str):
        self.url = str(url)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except ImportError as exc:  # e.g. s3:// without s3fs
            raise RegistryError(f"registry {self.url}: {exc}") from exc
        except ValueError as exc:
            raise RegistryError(f"registry {self.url}: not a usable URL: {exc}") from exc

    @contextmanager
    def _alias_lock(self) -> Iterator[None]:
        """Serialise alias changes (promote, rollback) between processes on a local registry;
        an object store has no locks, so changes there are last-writer-wins."""
        if not isinstance(self.fs, LocalFileSystem):
            yield
            return
        path = Path(self._path("aliases", ".lock"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def _write_atomic(self, path: str, data: bytes) -> None:
        """Write to a temporary name, then rename over the target (one PUT on object stores)."""
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as fh:
            fh.write(data)
        self.fs.mv(tmp, path)

    # -- versions ---------------------------------------------------------------------
    @staticmethod
    def new_version_id() -> str:
        """A fresh, time-ordered version id."""
        return f"{_now():%Y%m%dT%H%M%S.%f}Z-{uuid.uuid4().hex[:6]}"

    def publish(self, files: dict[str, bytes], manifest: dict[str, Any],
                version: str | None = None) -> str:
        """Store a new immutable version; return its id."""
        if MANIFEST in files:
            raise RegistryError("the manifest is written by the registry")
        checksums = {name: sha256_bytes(data) for name, data in sorted(files.items())}
        created = _now()
        version = version or self.new_version_id()
        if self.fs.exists(self._path("models", version)):
            raise RegistryError(f"version {version} exists already")
        manifest = {**manifest, "version": version, "created_at": created.isoformat(),
                    "files": checksums}
        staging = self._path("models", f".staging-{uuid.uuid4().hex}")
        self.fs.makedirs(staging, exist_ok=True)
        for name, data in files.items():
            with self.fs.open(f"{staging}/{name}", "wb") as fh:
                fh.write(data)
        with self.fs.open(f"{staging}/{MANIFEST}", "wb") as fh:
            fh.write(json.dumps(manifest, indent=2, default=str).encode())
        self.fs.mv(staging, self._path("models", version), recursive=True)
        return version

    def versions(self) -> list[str]:
        """Published version ids, oldest first."""
        base = self._path("models")
        if not self.fs.exists(base):
            return []
        out = []
        for entry in self.fs.ls(base, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith(".") and self.fs.exists(f"{base}/{name}/{MANIFEST}"):
                out.append(name)
        return sorted(out)

    def manifest(self, version: str) -> dict[str, Any]:
        path = self._path("models", version, MANIFEST)
        try:
            with self.fs.open(path, "rb") as fh:
                return json.loads(fh.read())
        except FileNotFoundError as exc:
            raise RegistryError(f"no model version {version!r} in {self.url}") from exc

    def read_file(self, version: str, name: str, manifest: dict[str, Any] | None = None) -> bytes:
        """A file of a version, verified against its manifest's SHA-256."""
        manifest = manifest or self.manifest(version)
        expected = manifest["files"].get(name)
        if expected is None:
            raise RegistryError(f"version {version} has no file {name!r}")
        with self.fs.open(self._path("models", version, name), "rb") as fh:
            data = fh.read()
        if sha256_bytes(data) != expected:
            raise ChecksumError(f"{version}/{name}: SHA-256 does not match the manifest")
        return data

    def verify(self, version: str) -> dict[str, Any]:
        """Check every file of a version; return its manifest."""
        manifest = self.manifest(version)
        for name in manifest["files"]:
            self.read_file(version, name, manifest)
        return manifest

    def load_model(self, version: str) -> tuple[Any, dict[str, Any]]:
        """The fitted model of a version and its manifest, after checking every file."""
        manifest = self.verify(version)
        data = self.read_file(version, MODEL_FILE, manifest)
        return joblib.load(io.BytesIO(data)), manifest

    # -- aliases ----------------------------------------------------------------------
    def alias(self, name: str) -> dict[str, Any] | None:
        try:
            with self.fs.open(self._path("aliases", f"{name}.json"), "rb") as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            return None

    def alias_version(self, name: str) -> str | None:
        record = self.alias(name)
        return record["version"] if record else None

    def set_alias(self, name: str, version: str, reason: str, by: str | None = None) -> None:
        self.manifest(version)  # must exist
        now = _now()
        record = {"alias": name, "version": version, "set_at": now.isoformat(),
                  "by": by or getpass.getuser(), "reason": reason,
                  "replaced": self.alias_version(name)}
        data = json.dumps(record, indent=2).encode()
        self._write_atomic(self._path("aliases", f"{name}.json"), data)
        stamp = f"{now:%Y%m%dT%H%M%S%f}Z-{name}.json"
        self._write_atomic(self._path("history", stamp), data)

    def promote(self, version: str, reason: str, by: str | None = None) -> None:
        """Make a version the champion; the old champion becomes `previous`."""
        with self._alias_lock():
            self._promote(version, reason, by)

    def _promote(self, version: str, reason: str, by: str | None) -> None:
        old = self.alias_version("champion")
        if old == version:
            return
        if old:
            self.set_alias("previous", old, f"replaced by {version}: {reason}", by)
        self.set_alias("champion", version, reason, by)

    def rollback(self, reason: str, by: str | None = None) -> str:
        """Swap champion and previous; return the version now serving."""
        with self._alias_lock():
            previous = self.alias_version("previous")
            if not previous:
                raise RegistryError("no previous champion to roll back to")
            self._promote(previous, f"rollback: {reason}", by)
            return previous

    def find(self, key: str, value: Any) -> str | None:
        """The newest version whose manifest has `key == value` (e.g. the run that made it)."""
        return next((v for v in reversed(self.versions())
                     if self.manifest(v).get(key) == value), None)

    def history(self) -> list[dict[str, Any]]:
        base = self._path("history")
        if not self.fs.exists(base):
            return []
        out = []
        for path in sorted(self.fs.ls(base, detail=False)):
            if not path.rsplit("/", 1)[-1].startswith("."):
                with self.fs.open(path, "rb") as fh:
                    out.append(json.loads(fh.read()))
        return out
