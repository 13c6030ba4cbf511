"""Where the registry's bytes live: a local folder or an object store (fsspec URL).

This is the only module that knows how a write is made safe on each backend:

- an atomic replace: a temporary file renamed over the target locally (fsync first), one PUT
  on an object store (readers see the old object or the new one, whole);
- a create that never replaces (`create`): ``os.link`` of a complete temporary file locally
  (fails if the name exists), ``If-None-Match: *`` on S3 (AWS, MinIO and moto support it),
  fsspec's ``mode="create"`` elsewhere;
- a replace only if the object is still the one read (`replace_if`): ``If-Match: <ETag>`` on
  S3; locally alias changes hold an exclusive ``flock`` (`lock`), so a plain replace is safe;
- a version folder that appears whole (`publish_folder`): one rename of a staging folder
  locally; on an object store the files first, the manifest last, created only if absent.

Reading is bounded (`read_bounded`, `hash_file`): a file is opened only if it is a regular
file (a local symlink is not followed, a FIFO or device is never waited on) of the expected
size, at most `limit` bytes, read in chunks. Nothing here does I/O before it is first used:
the constructor only parses the URL lazily.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from credit_risk.registry.errors import ChecksumError, RegistryError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
STALE_AFTER_S = 3600.0  # leftovers of a writer that died; a live writer's are younger


class Conflict(Exception):
    """A conditional write lost: the object exists already, or changed since it was read."""


def _precondition_failed(exc: BaseException) -> bool:
    """Whether a store refused a write for a failed precondition (HTTP 412, or 409 when two
    conditional writes of one key overlap)."""
    if isinstance(exc, FileExistsError):
        return True
    for cause in (exc, exc.__cause__, exc.__context__):
        response = getattr(cause, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return True
    return False


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _check_size(label: str, actual: int, size: int | None, limit: int) -> None:
    if size is not None and actual != size:
        raise ChecksumError(f"{label}: SHA-256 does not match the manifest: the file has "
                            f"{actual} bytes, the manifest lists {size}")
    if actual > limit:
        raise ChecksumError(f"{label}: {actual} bytes, over the limit of {limit}: refused")


class Storage:
    """A registry root on an fsspec URL; paths are "/"-joined strings under `root`."""

    def __init__(self, url: str):
        self.url = str(url)

    @cached_property
    def _fs_root(self) -> tuple[Any, str]:
        try:
            fs, root = fsspec.core.url_to_fs(self.url)
            if not isinstance(fs, LocalFileSystem):  # shared with other processes: no cache
                fs, root = fsspec.core.url_to_fs(self.url, use_listings_cache=False)
        except ImportError as exc:  # e.g. s3:// without s3fs
            raise RegistryError(f"registry {self.url}: {exc}") from exc
        except ValueError as exc:
            raise RegistryError(f"registry {self.url}: not a usable URL: {exc}") from exc
        return fs, root

    @property
    def fs(self) -> Any:
        return self._fs_root[0]

    @property
    def root(self) -> str:
        return self._fs_root[1]

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def s3(self) -> bool:
        """S3 or S3-compatible: If-None-Match / If-Match on PutObject."""
        protocol = getattr(self.fs, "protocol", ())
        protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        return not self.local and bool({"s3", "s3a"} & protocols)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def label(self, path: str) -> str:
        root = self.root.rstrip("/") + "/"
        return path[len(root):] if path.startswith(root) else path

    # -- listing -------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def entries(self, folder: str) -> list[tuple[str, Any]]:
        """(name, stamp) of each entry of a folder, sorted; [] when there is none. The stamp
        (size and modification time or ETag) changes when the entry is replaced."""
        try:
            listed = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        out = [(e["name"].rstrip("/").rsplit("/", 1)[-1],
                (e.get("size"), e.get("mtime") or e.get("LastModified") or e.get("ETag")))
               for e in listed]
        return sorted(out, key=lambda x: x[0])

    def names(self, folder: str) -> list[str]:
        return [name for name, _ in self.entries(folder)]

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise alias changes between processes on a local registry (flock); an object
        store has no lock: there, conditional writes order changes."""
        if not self.local:
            yield
            return
        path = Path(self.path("aliases", ".lock"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _tmp_local(self, path: str, data: bytes) -> str:
        parent = path.rsplit("/", 1)[0]
        os.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    def put(self, path: str, data: bytes, create: bool = False, etag: str | None = None) -> None:
        """One PUT on an object store. `create`: only if there is no such object yet; `etag`:
        only if the object is still the one with that ETag. Conflict when it does not hold."""
        kwargs: dict[str, Any] = {}
        if self.s3:
            if create:
                kwargs["IfNoneMatch"] = "*"
            elif etag is not None:
                kwargs["IfMatch"] = etag
        elif create:
            kwargs["mode"] = "create"
        try:
            self.fs.pipe_file(path, data, **kwargs)
        except Exception as exc:
            if _precondition_failed(exc):
                raise Conflict(f"{path}: {exc}") from exc
            raise

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace `path` by `data`, whole."""
        if self.local:
            os.replace(self._tmp_local(path, data), path)
        else:
            self.put(path, data)

    def create(self, path: str, data: bytes) -> None:
        """Write `path` only if nothing is there yet, whole; Conflict otherwise."""
        if not self.local:
            self.put(path, data, create=True)
            return
        tmp = self._tmp_local(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise Conflict(path) from exc
        finally:
            os.unlink(tmp)

    def replace_if(self, path: str, data: bytes, etag: str | None, existed: bool) -> None:
        """Replace `path` only if it is still what was read (its ETag, or absent when it did
        not exist); Conflict otherwise. Locally the caller holds `lock`."""
        if self.local:
            self.write_atomic(path, data)
        else:
            self.put(path, data, create=not existed, etag=etag)

    def publish_folder(self, folder: str, files: dict[str, bytes], last: str,
                       data: bytes) -> None:
        """Write the files of a new folder and `last` (the manifest) after them, so that the
        folder is never seen with `last` and without all the files; RegistryError when the
        folder exists already."""
        if self.exists(folder):
            raise RegistryError(f"{self.label(folder)} exists already")
        if not self.local:
            for name, content in files.items():
                self.put(f"{folder}/{name}", content)
            try:
                self.put(f"{folder}/{last}", data, create=True)
            except Conflict as exc:
                raise RegistryError(f"{self.label(folder)} exists already") from exc
            return
        parent = folder.rsplit("/", 1)[0]
        self.clean_leftovers(parent)
        staging = f"{parent}/.staging-{uuid.uuid4().hex}"
        os.makedirs(staging)
        for name, content in [*files.items(), (last, data)]:
            with open(f"{staging}/{name}", "wb") as fh:
                fh.write(content)
        try:  # one rename: the folder appears whole; never into an existing one
            os.rename(staging, folder)
        except OSError as exc:
            self.fs.rm(staging, recursive=True)
            raise RegistryError(f"{self.label(folder)} exists already") from exc

    def clean_leftovers(self, folder: str) -> None:
        """Remove the staging folders and temporary files writers that died left in a local
        folder (only those older than an hour: a live writer's are younger)."""
        base = Path(folder)
        if not self.local or not base.is_dir():
            return
        cutoff = time.time() - STALE_AFTER_S
        for entry in base.iterdir():
            if entry.name.startswith((".staging-", ".tmp-")) \
                    and entry.lstat().st_mtime < cutoff:
                log.info("registry %s: removing the stale leftover %s", self.url, entry)
                if entry.is_dir() and not entry.is_symlink():
                    self.fs.rm(str(entry), recursive=True)
                else:
                    entry.unlink(missing_ok=True)

    # -- bounded reading -----------------------------------------------------------------------
    @contextmanager
    def open_regular(self, path: str, label: str, limit: int,
                     size: int | None = None) -> Iterator[IO[bytes]]:
        """Open a regular file of `size` bytes (when given) and at most `limit`; ChecksumError
        for anything else, FileNotFoundError when it does not exist."""
        if self.local:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
            try:
                fd = os.open(path, flags)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ChecksumError(f"{label}: a symbolic link, not a regular file: "
                                        "refused") from exc
                if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
                    raise ChecksumError(f"{label}: not a regular file: refused") from exc
                raise
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise ChecksumError(f"{label}: {_kind(info.st_mode)}, not a regular file: "
                                        "refused")
                actual: int | None = info.st_size
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
            fh: IO[bytes] = os.fdopen(fd, "rb", buffering=0)  # no st_blksize-sized buffer
        else:
            entry = self.fs.info(path)
            if entry.get("type") != "file":
                raise ChecksumError(f"{label}: a {entry.get('type')}, not a file: refused")
            actual = entry.get("size") if isinstance(entry.get("size"), int) else None
            if actual is not None:
                _check_size(label, actual, size, limit)
            fh = self.fs.open(path, "rb")
        with fh:
            if actual is not None:
                _check_size(label, actual, size, limit)
            yield fh

    def hash_file(self, path: str, label: str, limit: int, size: int | None = None,
                  keep: bool = False, meta: dict[str, Any] | None = None
                  ) -> tuple[str, bytes | None, int]:
        """(SHA-256, the bytes when `keep`, the number of bytes) of a bounded regular file;
        `meta["etag"]`, when given, is the object store's ETag of exactly what was read."""
        digest, parts, total = hashlib.sha256(), [], 0
        with self.open_regular(path, label, limit, size) as fh:
            if meta is not None:
                details = getattr(fh, "details", None)
                meta["etag"] = details.get("ETag") if isinstance(details, dict) else None
            while chunk := fh.read(min(CHUNK_BYTES, limit + 1 - total)):
                total += len(chunk)
                if total > limit:
                    raise ChecksumError(f"{label}: over the limit of {limit} bytes: refused")
                digest.update(chunk)
                if keep:
                    parts.append(chunk)
        return digest.hexdigest(), b"".join(parts) if keep else None, total

    def read_bounded(self, path: str, limit: int, meta: dict[str, Any] | None = None) -> bytes:
        """The bytes of a bounded regular file (see hash_file)."""
        _, data, _ = self.hash_file(path, self.label(path), limit, keep=True, meta=meta)
        assert data is not None
        return data
