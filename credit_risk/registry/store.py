"""Model registry on an fsspec URL: immutable signed versions, crash-safe aliases.

Layout under the registry root::

    models/<version>/manifest.json   written last; a version without it does not exist; lists
                                     the SHA-256 and size of every file and carries the Ed25519
                                     signature over all of that (credit_risk.registry.signing)
    models/<version>/...             the model files, reports, model card
    aliases/state.json               every alias in one record, replaced atomically: a copy of
                                     the newest alias change record (below)
    history/<seq>-<time>-<id>-<action>.json
                                     one alias change record per change, written BEFORE
                                     state.json (a write-ahead record)

An alias change record is ``{"format": 2, "change": <id>, "seq": n, "parent": <id of the
change it follows>, "action", "at", "by", "dataset", "changes": [...], "datasets": {dataset:
{name: {...}}}, "aliases_dataset": <dataset>, "aliases": {name: {...}}}``, signed (format
``credit-risk-aliases-v1``) when a signing key is set.

Aliases are per dataset (one registry holds several portfolios): ``datasets`` maps each dataset
to its own ``champion`` and ``previous``. A change acts on one dataset (``dataset``, also in
each entry of ``changes``): the one in the manifest of the version it points an alias at.
Every record carries every dataset's aliases, so the chain, the crash recovery and the
conditional writes below are those of one record, whatever the number of datasets.

Compatibility: ``aliases`` repeats the aliases of one dataset, ``aliases_dataset`` (the
registry's first), for older releases, which read only ``aliases``: they keep serving that
dataset and do not see the others (an older release's promote or rollback writes only
``aliases``: upgrade every writer before a registry holds a second dataset). A record without
``datasets`` (older releases, and the old files below) is read as the aliases of ONE dataset:
the one in the champion's manifest (the previous' when the champion's cannot be read). When
neither can, reads refuse it (AliasStateError: never taken for "no champion"), listings show
it as ``""``, "unattributed", and a change of a named dataset continues it as that dataset's,
as an earlier release would; a storage error while reading them refuses the read or change.

Dataset names are names, never paths: at most 100 printable characters, no ``/`` or ``\\``,
not starting with ``.``, no blanks around (`valid_dataset`). A manifest naming anything else is
not published, nor promoted; a record holding one is malformed. An alias is only ever taken for
its own dataset: promote and rollback check the dataset of the version's verified manifest,
and serving checks it again (credit_risk.scoring.champion), so a record that names a version
of another dataset moves nothing.

Changes form a chain: a change has the sequence number of its parent plus one. A registry
opened after a crash between the two writes completes the one record whose parent is the
current state's change; any other record (a forged one, one of a host whose clock is wrong) is
ignored and logged: the order is the chain's, never a clock's. With trusted keys, `alias()`
refuses a state that is not signed by one, or whose sequence number is lower than one this
object has already seen.

On an object store (``s3://``; s3fs, the `s3` extra) the same layout is used, with what S3
offers instead of renames and locks:

- Publishing writes the version's files straight to ``models/<version>/`` and the manifest
  last, created with ``If-None-Match: *`` (it never replaces one): a PUT is atomic, readers
  list only versions with a manifest, so a partial version is never seen. A publish that dies
  leaves files without a manifest: invisible, and never a version.
- Alias changes cannot take a lock, so two writers must not both build on the same state
  (the second would silently undo the first: a lost update). Each change record is created
  under a name derived from its place in the chain only, ``history/<seq>.json``, with
  ``If-None-Match: *``: of two writers racing for the same next sequence number exactly one
  succeeds; the other re-reads the state (completing the winner's change if its state.json
  write is still on its way) and tries again on top of it, so both changes land in order and
  the chain stays linear. state.json is then replaced with ``If-Match: <ETag of the state it
  was read as>`` (``If-None-Match: *`` when there is none yet), so a delayed write of an older
  state can never replace a newer one. Why conditional writes rather than a lock object:
  S3 has no lock that expires safely when its holder dies, while a conditional PUT is one
  atomic request that needs no cleanup; AWS S3 and MinIO support both conditions, and so
  does moto, which the tests run against. On other object stores (no ETag preconditions)
  the record is created with fsspec's ``mode="create"`` and state.json is last-writer-wins.
- Listings are never cached (a registry is shared with other processes).

Reading is bounded: a version's file is opened only if it is a regular file (a local symlink
is not followed, a FIFO or device is refused) of the size its manifest records, and hashed in
chunks. Registries of older releases (state.json without a sequence number, or
aliases/champion.json and previous.json; manifests without sizes) are read as they are and
continued on their first alias change.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import hashlib
import json
import logging
import os
import random
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from credit_risk.errors import CreditRiskError
from credit_risk.registry import signing

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from credit_risk.config import Settings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
STATE_FILE = "state.json"
LEGACY_ALIASES = ("champion", "previous")
ALIAS_ATTEMPTS = 50  # an alias change on an object store, against concurrent writers
STALE_AFTER_S = 3600.0  # leftovers of a writer that died; a live writer's are younger
MAX_FILE_BYTES = 1 << 30  # a version file whose manifest records no size (older releases)
MAX_MANIFEST_BYTES = 8 << 20  # a manifest (about 30 kB in practice)
MAX_RECORD_BYTES = 1 << 20  # an alias change record, state.json, an old alias file
CHUNK_BYTES = 1 << 20
RECORD_FORMAT = 2
UNATTRIBUTED = ""  # a manifest naming no dataset; listed: old aliases of no known dataset
MAX_DATASET_CHARS = 100
_warned: set[str] = set()


class RegistryError(CreditRiskError, RuntimeError):
    """A version or alias is missing or inconsistent."""


class ChecksumError(RegistryError):
    """A file of a version does not match the SHA-256 in its manifest."""


class SignatureError(RegistryError):
    """A version is unsigned, or not signed by a trusted key, while trusted keys are set."""


class AliasStateError(RegistryError):
    """The alias record cannot be used: unreadable, or older than one already seen."""


class _Conflict(Exception):
    """A conditional write lost: the object exists already, or changed since it was read."""


def _precondition_failed(exc: BaseException) -> bool:
    """Whether an object store refused a write for a failed precondition (HTTP 412, or 409
    when two conditional writes of the same key overlap)."""
    if isinstance(exc, FileExistsError):
        return True
    for cause in (exc, exc.__cause__, exc.__context__):
        response = getattr(cause, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return True
    return False


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


SKIPPED = object()  # a record that is missing or unreadable (a JSON null is a value)


def _warn_once(key: str, message: str, *args: Any) -> None:
    """Log a warning once per process (a poller would repeat it every few seconds)."""
    if key in _warned:
        return
    if len(_warned) < 10_000:
        _warned.add(key)
    log.warning(message, *args)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _valid_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name \
        and not name.startswith(".") and name != MANIFEST


def _check_manifest(version: str, manifest: Any) -> dict[str, Any]:
    """The manifest, if its shape is one a reader can rely on; RegistryError otherwise."""
    if not isinstance(manifest, dict):
        raise RegistryError(f"version {version}: the manifest is not a JSON object")
    files, sizes = manifest.get("files"), manifest.get("sizes")
    if not isinstance(files, dict) or not all(
            _valid_name(n) and isinstance(h, str) for n, h in files.items()):
        raise RegistryError(f"version {version}: the manifest's file list is malformed")
    if sizes is not None and not (isinstance(sizes, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes.values())):
        raise RegistryError(f"version {version}: the manifest's file sizes are malformed")
    return manifest


def valid_dataset(name: Any) -> bool:
    """A dataset name the registry keeps aliases for: a name, never a path (see the module)."""
    return isinstance(name, str) and 0 < len(name) <= MAX_DATASET_CHARS and name.isprintable() \
        and name == name.strip() and "/" not in name and "\\" not in name \
        and not name.startswith(".")


def dataset_of(version: str, manifest: Mapping[str, Any]) -> str:
    """The dataset a version belongs to ("" for a manifest that names none); RegistryError for
    a name that is not a valid_dataset."""
    name = manifest.get("dataset")
    if name is None:
        return UNATTRIBUTED
    if not valid_dataset(name):
        raise RegistryError(f"version {version}: dataset name {str(name)[:120]!r} refused: a "
                            f"dataset is named by at most {MAX_DATASET_CHARS} printable "
                            "characters, without '/' or '\\', not starting with '.'")
    return str(name)


def _valid_datasets(datasets: Any) -> bool:
    return isinstance(datasets, dict) and all(
        (d == UNATTRIBUTED or valid_dataset(d)) and _valid_aliases(a) for d, a in datasets.items())


def _valid_aliases(aliases: Any) -> bool:
    return isinstance(aliases, dict) and all(
        isinstance(n, str) and isinstance(r, dict) and isinstance(r.get("version"), str)
        for n, r in aliases.items())


def _valid_change(entry: dict[str, Any]) -> bool:
    """A record of this release: a link of the chain of alias changes."""
    seq, parent, changes = entry.get("seq"), entry.get("parent"), entry.get("changes")
    return isinstance(entry.get("change"), str) and isinstance(seq, int) \
        and not isinstance(seq, bool) and seq >= 1 \
        and (parent is None or isinstance(parent, str)) and _valid_aliases(entry.get("aliases")) \
        and isinstance(changes, list) and all(
            isinstance(c, dict) and isinstance(c.get("alias"), str)
            and isinstance(c.get("version"), str)
            and isinstance(c.get("dataset", UNATTRIBUTED), str) for c in changes) \
        and ("datasets" not in entry or (_valid_datasets(entry["datasets"]) and isinstance(
            entry.get("aliases_dataset", UNATTRIBUTED), str)))


_Plan = tuple[dict[str, str], dict[str, str], Any]  # alias targets, their reasons, a result


def _promotion(current: dict[str, Any], version: str, reason: str) -> _Plan:
    """The alias targets that make `version` the champion (the old one becomes previous)."""
    old = (current.get("champion") or {}).get("version")
    if old == version:
        return {}, {}, version
    targets: dict[str, str] = {}
    reasons: dict[str, str] = {}
    if old:
        targets["previous"] = old
        reasons["previous"] = f"replaced by {version}: {reason}"
    targets["champion"], reasons["champion"] = version, reason
    return targets, reasons, version


def builtin_spec_dataset(spec: str) -> str | None:
    """The dataset of a spec named as a built-in spec is (its file name is its name; a path to a
    YAML file is read by the spec package, which the registry does not import): None for one."""
    if "/" in spec or "\\" in spec or "." in spec or not valid_dataset(spec):
        return None
    return spec


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _valid_old_change(entry: dict[str, Any]) -> bool:
    """A record of an older release: one alias change, or several with "changes"."""
    if "changes" in entry:
        changes = entry["changes"]
        return isinstance(changes, list) and all(
            isinstance(c, dict) and isinstance(c.get("alias"), str)
            and isinstance(c.get("version"), str) for c in changes)
    return isinstance(entry.get("alias"), str) and isinstance(entry.get("version"), str)


class Registry:
    def __init__(self, url: str, signing_key: Ed25519PrivateKey | None = None,
                 trusted_keys: Iterable[Ed25519PublicKey] = (),
                 max_file_bytes: int = MAX_FILE_BYTES, dataset: str | None = None,
                 prefer: str | None = None):
        """`dataset`: the dataset whose aliases reads and rollbacks act on when they name none
        (CREDIT_RISK_DATASET); without it, the registry's only dataset. `prefer`: for reads
        only, the dataset to read when the registry holds several and `dataset` is unset (the
        configured spec's)."""
        self.url = str(url)
        self.signing_key = signing_key
        self.trusted_keys = tuple(trusted_keys)
        self.max_file_bytes = max_file_bytes  # for manifests of older releases (no sizes)
        if dataset is not None and not valid_dataset(dataset):
            raise RegistryError(f"not a dataset name: {dataset!r}")
        self.dataset = dataset
        self.prefer = prefer if valid_dataset(prefer) else None
        self._seen_seq = 0  # the highest alias state sequence number this object accepted
        self._datasets: dict[str, str] = {}  # version -> dataset of its manifest (attribution)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
            if not self._local:  # other processes write it too: no stale listings
                self.fs, self.root = fsspec.core.url_to_fs(self.url, use_listings_cache=False)
        except ImportError as exc:  # e.g. s3:// without s3fs
            raise RegistryError(f"registry {self.url}: {exc}") from exc
        except ValueError as exc:
            raise RegistryError(f"registry {self.url}: not a usable URL: {exc}") from exc
        # S3 (and S3-compatible stores): If-None-Match / If-Match on PutObject.
        self._s3 = not self._local and bool({"s3", "s3a"} & set(_protocols(self.fs)))
        self._open()

    @classmethod
    def from_settings(cls, settings: Settings, prefer: str | None = None) -> Registry:
        """The registry of the settings, with their signing key and trusted keys, reading the
        aliases of CREDIT_RISK_DATASET (unset: the only dataset; of several, `prefer`, by
        default the dataset of a built-in spec named by CREDIT_RISK_DATASET_SPEC)."""
        try:
            private = (signing.load_private_key(settings.signing.key_file)
                       if settings.signing.key_file else None)
            trusted = [signing.load_public_key(p) for p in settings.signing.trusted_keys]
        except signing.SigningError as exc:
            raise SignatureError(str(exc)) from exc
        if prefer is None:
            prefer = builtin_spec_dataset(settings.data.spec)
        registry = cls(settings.registry.url, signing_key=private, trusted_keys=trusted,
                       dataset=settings.registry.dataset, prefer=prefer)
        if not trusted and registry.url not in _warned:
            _warned.add(registry.url)
            log.warning("registry %s: manifests are not signed/verified, nor aliases (%s; set "
                        "CREDIT_RISK_TRUSTED_KEYS): whoever can write the registry decides "
                        "what is served", registry.url,
                        "signed, but no trusted keys" if private else "no keys configured")
        return registry

    @property
    def _local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def _open(self) -> None:
        """Finish a change a crash interrupted and clean old leftovers (local registries).
        Never raises for what it finds: a bad record is logged and skipped."""
        try:
            if not self.fs.exists(self.root):
                return
            with self._alias_lock():
                self._reconcile()
            if self._local:
                self._clean_leftovers()
        except OSError as exc:  # e.g. a read-only mount or bucket policy: readers still work
            log.debug("registry %s: not reconciled: %s", self.url, exc)

    def _clean_leftovers(self) -> None:
        cutoff = time.time() - STALE_AFTER_S
        for folder, prefixes in (("models", (".staging-", ".tmp-")),
                                 ("aliases", (".tmp-",)), ("history", (".tmp-",))):
            base = Path(self._path(folder))
            if not base.is_dir():
                continue
            for entry in base.iterdir():
                if entry.name.startswith(prefixes) and entry.lstat().st_mtime < cutoff:
                    log.info("registry %s: removing the stale leftover %s", self.url, entry)
                    if entry.is_dir() and not entry.is_symlink():
                        self.fs.rm(str(entry), recursive=True)
                    else:
                        entry.unlink(missing_ok=True)

    @contextmanager
    def _alias_lock(self) -> Iterator[None]:
        """Serialise alias changes (promote, rollback) between processes on a local registry;
        an object store has no locks: conditional writes order changes there (_change)."""
        if not self._local:
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

    def _write_atomic(self, path: str, data: bytes) -> None:
        """Write to a temporary name, then rename over the target (one PUT on object stores)."""
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        if self._local:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            return
        self._put(path, data)

    def _put(self, path: str, data: bytes, create: bool = False,
             etag: str | None = None) -> None:
        """One PUT on an object store (atomic: readers see the old or the new object). `create`:
        only if there is no such object yet; `etag`: only if the object is still the one with
        that ETag. _Conflict when the condition does not hold."""
        kwargs: dict[str, Any] = {}
        if self._s3:
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
                raise _Conflict(f"{path}: {exc}") from exc
            raise

    # -- bounded reading ---------------------------------------------------------------
    @contextmanager
    def _open_regular(self, path: str, label: str, limit: int,
                      size: int | None = None) -> Iterator[IO[bytes]]:
        """Open a file for reading only if it is a regular file (on a local registry a
        symlink is not followed, and a FIFO or device is never waited on) of `size` bytes
        when given, and at most `limit`. FileNotFoundError when it does not exist."""
        if self._local:
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
                actual = info.st_size
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
            fh: IO[bytes] = os.fdopen(fd, "rb", buffering=0)  # no st_blksize-sized buffer
        else:
            entry = self.fs.info(path)
            if entry.get("type") != "file":
                raise ChecksumError(f"{label}: a {entry.get('type')}, not a file: refused")
            actual = entry.get("size")
            if not isinstance(actual, int):
                actual = None
            if actual is not None:
                self._check_size(label, actual, size, limit)
            fh = self.fs.open(path, "rb")
        with fh:
            if actual is not None:
                self._check_size(label, actual, size, limit)
            yield fh

    @staticmethod
    def _check_size(label: str, actual: int, size: int | None, limit: int) -> None:
        if size is not None and actual != size:
            raise ChecksumError(f"{label}: SHA-256 does not match the manifest: the file has "
                                f"{actual} bytes, the manifest lists {size}")
        if actual > limit:
            raise ChecksumError(f"{label}: {actual} bytes, over the limit of {limit}: refused")

    def _read_bounded(self, path: str, label: str, limit: int,
                      meta: dict[str, Any] | None = None) -> bytes:
        """The bytes of a bounded regular file; `meta["etag"]`, when `meta` is given, is the
        object store's ETag of exactly what was read (s3fs pins its reads to it)."""
        parts, total = [], 0
        with self._open_regular(path, label, limit) as fh:
            if meta is not None:
                details = getattr(fh, "details", None)
                meta["etag"] = details.get("ETag") if isinstance(details, dict) else None
            while chunk := fh.read(min(CHUNK_BYTES, limit + 1 - total)):
                total += len(chunk)
                if total > limit:
                    raise ChecksumError(f"{label}: over the limit of {limit} bytes: refused")
                parts.append(chunk)
        return b"".join(parts)

    def _read_json_or_skip(self, path: str, what: str) -> Any:
        """_read_json, or SKIPPED: when the file is missing, and (with a warning) when it cannot
        be read or parsed: one bad record never stops the registry."""
        try:
            return self._read_json(path)
        except FileNotFoundError:
            return SKIPPED
        except (RegistryError, OSError) as exc:
            _warn_once(f"skip:{path}:{exc}", "registry %s: %s skipped: %s", self.url, what, exc)
            return SKIPPED

    def _read_json(self, path: str, limit: int = MAX_RECORD_BYTES,
                   meta: dict[str, Any] | None = None) -> Any:
        """JSON from a bounded regular file; FileNotFoundError when missing, RegistryError
        when it cannot be read or parsed."""
        label = path[len(self.root.rstrip("/")) + 1:] if path.startswith(self.root) else path
        data = self._read_bounded(path, label, limit, meta)
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RegistryError(f"{label}: not valid JSON: {exc}") from exc

    # -- versions ---------------------------------------------------------------------
    @staticmethod
    def new_version_id() -> str:
        """A fresh, time-ordered version id."""
        return f"{_now():%Y%m%dT%H%M%S.%f}Z-{uuid.uuid4().hex[:6]}"

    def publish(self, files: dict[str, bytes], manifest: dict[str, Any],
                version: str | None = None) -> str:
        """Store a new immutable version (signed when a signing key is set); return its id."""
        if MANIFEST in files:
            raise RegistryError("the manifest is written by the registry")
        bad = sorted(n for n in files if not _valid_name(n))
        if bad:
            raise RegistryError(f"not a file name for a version: {', '.join(bad)}")
        if manifest.get("dataset") is not None:
            dataset_of(version or "(new)", manifest)  # a name, never a path: RegistryError
        self._check_can_sign("its versions could never be promoted")
        checksums = {name: sha256_bytes(data) for name, data in sorted(files.items())}
        sizes = {name: len(data) for name, data in sorted(files.items())}
        version = version or self.new_version_id()
        if self.fs.exists(self._path("models", version)):
            raise RegistryError(f"version {version} exists already")
        manifest = {k: v for k, v in manifest.items() if k != signing.SIGNATURE_FIELD}
        manifest = {**manifest, "version": version, "created_at": _now().isoformat(),
                    "files": checksums, "sizes": sizes}
        manifest = json.loads(json.dumps(manifest, default=str))  # what readers will see
        if self.signing_key is not None:
            manifest = signing.sign(manifest, self.signing_key)
        data = json.dumps(manifest, indent=2).encode()
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"the manifest of {version} has {len(data)} bytes, over the "
                                f"limit of {MAX_MANIFEST_BYTES}")
        target = self._path("models", version)
        if not self._local:
            # No rename on an object store: the files in place, then the manifest, created
            # only if absent. Until it exists the version is not listed, nor readable.
            for name, content in files.items():
                self._put(f"{target}/{name}", content)
            try:
                self._put(f"{target}/{MANIFEST}", data, create=True)
            except _Conflict as exc:
                raise RegistryError(f"version {version} exists already") from exc
            return version
        staging = self._path("models", f".staging-{uuid.uuid4().hex}")
        self.fs.makedirs(staging, exist_ok=True)
        for name, content in files.items():
            with self.fs.open(f"{staging}/{name}", "wb") as fh:
                fh.write(content)
        with self.fs.open(f"{staging}/{MANIFEST}", "wb") as fh:
            fh.write(data)
        try:  # one rename: the version appears whole; never into an existing folder
            os.rename(staging, target)
        except OSError as exc:
            self.fs.rm(staging, recursive=True)
            raise RegistryError(f"version {version} exists already") from exc
        return version

    def _check_can_sign(self, consequence: str) -> None:
        if not self.trusted_keys:
            return
        if self.signing_key is None:
            raise SignatureError("trusted keys are configured but no signing key "
                                 f"(CREDIT_RISK_SIGNING_KEY_FILE) here: {consequence}")
        kid = signing.key_id(self.signing_key.public_key())
        if kid not in {signing.key_id(k) for k in self.trusted_keys}:
            raise SignatureError(f"the signing key {kid} is not one of the trusted keys: "
                                 f"{consequence}")

    def _candidates(self) -> list[str]:
        base = self._path("models")
        if not self.fs.exists(base):
            return []
        names = (entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(base, detail=False))
        return sorted(n for n in names if not n.startswith("."))

    def listing(self) -> list[tuple[str, dict[str, Any]]]:
        """(version, manifest) of every published version, oldest first. Only manifests that
        parse and (with trusted keys) are signed by one are listed; others are skipped with a
        warning. The files are not checked here (see verify)."""
        out = []
        for name in self._candidates():
            try:
                manifest = self._load_manifest(name)
                self.check_signature(name, manifest)
            except FileNotFoundError:  # no manifest: not (yet) a version
                continue
            except (RegistryError, OSError) as exc:
                _warn_once(f"skip:{self.url}:{name}:{exc}",
                           "registry %s: version %s not listed: %s", self.url, name, exc)
                continue
            out.append((name, manifest))
        return out

    def versions(self) -> list[str]:
        """Published version ids, oldest first (see listing: only usable manifests)."""
        return [v for v, _ in self.listing()]

    def _load_manifest(self, version: str) -> dict[str, Any]:
        if not version or not isinstance(version, str) or "/" in version \
                or version.startswith("."):
            raise RegistryError(f"not a version id: {version!r}")
        path = self._path("models", version, MANIFEST)
        return _check_manifest(version, self._read_json(path, MAX_MANIFEST_BYTES))

    def manifest(self, version: str) -> dict[str, Any]:
        """A version's manifest as stored, NOT verified (for listings; see verify)."""
        try:
            return self._load_manifest(version)
        except FileNotFoundError as exc:
            raise RegistryError(f"no model version {version!r} in {self.url}") from exc

    def check_signature(self, version: str, manifest: dict[str, Any]) -> str | None:
        """The id of the trusted key that signed the manifest; None when no keys are trusted."""
        if manifest.get("version") != version:
            raise SignatureError(f"version {version}: the manifest names version "
                                 f"{manifest.get('version')!r}")
        if not self.trusted_keys:
            return None
        try:
            return signing.verify(manifest, self.trusted_keys)
        except signing.SigningError as exc:
            raise SignatureError(f"version {version} refused: {exc}") from exc

    def _digest(self, version: str, name: str, manifest: dict[str, Any],
                keep: bool) -> bytes | None:
        """Hash a file of a version in chunks against its manifest; its bytes when `keep`."""
        expected = manifest["files"].get(name)
        if expected is None:
            raise RegistryError(f"version {version} has no file {name!r}")
        if not _valid_name(name):
            raise RegistryError(f"version {version}: not a file name: {name!r}")
        sizes = manifest.get("sizes") or {}
        size = sizes.get(name)
        limit = size if size is not None else self.max_file_bytes
        label = f"{version}/{name}"
        digest, parts, total = hashlib.sha256(), [], 0
        try:
            with self._open_regular(self._path("models", version, name), label, limit,
                                    size) as fh:
                while chunk := fh.read(min(CHUNK_BYTES, limit + 1 - total)):
                    total += len(chunk)
                    if total > limit:
                        raise ChecksumError(f"{label}: grew beyond {limit} bytes while read")
                    digest.update(chunk)
                    if keep:
                        parts.append(chunk)
        except FileNotFoundError as exc:
            raise ChecksumError(f"{label}: listed in the manifest but missing") from exc
        if (size is not None and total != size) or digest.hexdigest() != expected:
            raise ChecksumError(f"{label}: SHA-256 does not match the manifest")
        return b"".join(parts) if keep else None

    def read_file(self, version: str, name: str, manifest: dict[str, Any] | None = None) -> bytes:
        """A file of a version, checked against the SHA-256 of its manifest (a manifest passed
        in must come from verify; without one, the manifest's signature is checked here)."""
        if manifest is None:
            manifest = self.manifest(version)
            self.check_signature(version, manifest)
        data = self._digest(version, name, manifest, keep=True)
        assert data is not None
        return data

    def verify(self, version: str) -> dict[str, Any]:
        """Check the signature (when trusted keys are set) and every file; return the manifest.
        Files are hashed in chunks and never held in memory."""
        manifest = self.manifest(version)
        self.check_signature(version, manifest)
        for name in manifest["files"]:
            self._digest(version, name, manifest, keep=False)
        base = self._path("models", version)
        listed = {*manifest["files"], MANIFEST}
        extra = sorted(n for n in (p.rstrip("/").rsplit("/", 1)[-1]
                                   for p in self.fs.ls(base, detail=False)) if n not in listed)
        if extra:
            raise ChecksumError(f"version {version}: files not in the manifest: "
                                f"{', '.join(extra)}")
        return manifest

    def find(self, key: str, value: Any) -> str | None:
        """The newest listed version whose manifest has `key == value` (e.g. the run that made
        it): only manifests that parse and, with trusted keys, are signed by one."""
        return next((v for v, m in reversed(self.listing()) if m.get(key) == value), None)

    # -- alias change records --------------------------------------------------------------
    def _signed_by_trusted(self, record: dict[str, Any]) -> bool | None:
        """Whether an alias change record is signed by a trusted key; None without keys."""
        if not self.trusted_keys:
            return None
        try:
            signing.verify(record, self.trusted_keys, signing.ALIASES_FORMAT)
        except signing.SigningError:
            return False
        return True

    def _history_paths(self) -> list[str]:
        base = self._path("history")
        if not self.fs.exists(base):
            return []
        return sorted(p for p in self.fs.ls(base, detail=False)
                      if not p.rsplit("/", 1)[-1].startswith("."))

    def _history_records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(records of older releases in file-name order, this release's chain records), every
        record that can be read; a bad one is skipped with a warning."""
        old: list[dict[str, Any]] = []
        chained: list[dict[str, Any]] = []
        for path in self._history_paths():
            name = path.rsplit("/", 1)[-1]
            entry = self._read_json_or_skip(path, f"history record {name}")
            if entry is SKIPPED:
                continue
            if isinstance(entry, dict) and entry.get("format") == RECORD_FORMAT \
                    and _valid_change(entry):
                chained.append(entry)
            elif isinstance(entry, dict) and entry.get("format") != RECORD_FORMAT \
                    and _valid_old_change(entry):
                old.append(entry)
            else:
                _warn_once(f"history:{path}:shape", "registry %s: history record %s skipped: "
                           "not an alias change record", self.url, name)
        return old, chained

    def _read_state_file(self, meta: dict[str, Any]) -> Any:
        """state.json's JSON (its ETag in meta on an object store); on an object store a read
        that raced a replacement (the object changed between its HEAD and its GET) is
        retried."""
        path = self._path("aliases", STATE_FILE)
        for attempt in range(3):
            try:
                return self._read_json(path, meta=meta)
            except FileNotFoundError:
                raise
            except OSError:
                if self._local or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _state(self) -> dict[str, Any]:
        """The alias state as stored, NOT verified: {"change", "seq", "aliases", "record",
        "file", "etag"} ("record": the signed change record of this release, None for older
        formats; "etag": state.json's ETag on an object store, for a conditional replace).
        AliasStateError when state.json cannot be read or parsed."""
        meta: dict[str, Any] = {}
        try:
            state = self._read_state_file(meta)
        except FileNotFoundError:
            pass
        except (RegistryError, OSError) as exc:
            raise AliasStateError(f"the alias record is unusable: {exc}") from exc
        else:
            etag = meta.get("etag")
            if isinstance(state, dict) and state.get("format") == RECORD_FORMAT \
                    and _valid_change(state):
                return {"change": state["change"], "seq": state["seq"],
                        "aliases": dict(state["aliases"]), "record": state, "file": True,
                        "etag": etag, "datasets": state.get("datasets"),
                        "aliases_dataset": state.get("aliases_dataset")}
            if isinstance(state, dict) and state.get("format") != RECORD_FORMAT \
                    and _valid_aliases(state.get("aliases")) \
                    and isinstance(state.get("change"), str | None):
                return {"change": state.get("change"), "seq": 0,
                        "aliases": dict(state["aliases"]), "record": None, "file": True,
                        "etag": etag, "datasets": None, "aliases_dataset": None}
            raise AliasStateError(f"the alias record {STATE_FILE} is malformed")
        aliases = {}
        for name in LEGACY_ALIASES:
            record = self._read_json_or_skip(self._path("aliases", f"{name}.json"),
                                             f"alias file {name}.json")
            if record is SKIPPED:
                continue
            if not (isinstance(record, dict) and isinstance(record.get("version"), str)):
                _warn_once(f"legacy:{self.url}:{name}", "registry %s: alias file %s.json "
                           "skipped: malformed", self.url, name)
                continue
            aliases[name] = {k: v for k, v in record.items() if k != "alias"}
        return {"change": None, "seq": 0, "aliases": aliases, "record": None, "file": False,
                "etag": None, "datasets": None, "aliases_dataset": None}

    def _checked_state(self) -> dict[str, Any]:
        """The alias state serving may act on: with trusted keys, signed by one and not older
        than a state this object has already accepted."""
        state = self._state()
        if not self.trusted_keys or (not state["aliases"] and not state["file"]):
            return state
        if state["record"] is None:
            raise SignatureError(f"the alias record of {self.url} is not signed (written by an "
                                 "older release or without a signing key): refused; promote "
                                 "with the signing key to sign it")
        try:
            signing.verify(state["record"], self.trusted_keys, signing.ALIASES_FORMAT)
        except signing.SigningError as exc:
            raise SignatureError(f"the alias record of {self.url} refused: {exc}") from exc
        if state["seq"] < self._seen_seq:
            raise AliasStateError(f"the alias record of {self.url} has sequence number "
                                  f"{state['seq']}, older than {self._seen_seq} seen before: "
                                  "a replayed older state, refused")
        self._seen_seq = state["seq"]
        return state

    # -- aliases per dataset ---------------------------------------------------------------
    def _manifest_dataset(self, version: str) -> str | None:
        """The dataset in a version's manifest (signed by a trusted key, with keys), for telling
        which dataset old aliases belong to; None when the manifest is unusable (missing,
        malformed, untrusted); AliasStateError when storage fails (try again: never a guess)."""
        if version not in self._datasets:
            try:
                manifest = self.manifest(version)
                self.check_signature(version, manifest)
                self._datasets[version] = dataset_of(version, manifest)
            except RegistryError as exc:
                _warn_once(f"attribute:{self.url}:{version}", "registry %s: the dataset of "
                           "version %s cannot be read (%s)", self.url, version, exc)
                return None
            except OSError as exc:
                raise AliasStateError(f"the dataset of version {version}, named by the alias "
                                      f"record of an earlier release, cannot be read now: "
                                      f"{exc}") from exc
        return self._datasets[version]

    def _attributed(self, aliases: dict[str, Any]) -> str | None:
        """The dataset of aliases kept without one (older releases): the champion's manifest's,
        else the previous'; None when neither manifest is usable."""
        for name in ("champion", "previous"):
            version = (aliases.get(name) or {}).get("version")
            dataset = self._manifest_dataset(version) if version else None
            if dataset is not None:
                return dataset
        return None

    def _groups(self, state: dict[str, Any],
                unknown: str | None = None) -> dict[str, dict[str, Any]]:
        """{dataset: {alias: record}} of an alias state, old forms included. Old aliases whose
        dataset cannot be told are `unknown`'s; with none given, AliasStateError (never a
        guess: a reader would take them for no champion, a writer would keep them as
        nobody's)."""
        if state.get("datasets") is not None:
            return {d: dict(a) for d, a in state["datasets"].items()}
        aliases = state["aliases"]
        if not aliases:
            return {}
        dataset = self._attributed(aliases)
        if dataset is None:
            dataset = unknown
        if dataset is None:
            versions = ", ".join(str(r.get("version")) for r in aliases.values())
            raise AliasStateError(f"registry {self.url}: the aliases of an earlier release "
                                  f"({versions}) belong to no dataset that can be told: the "
                                  "manifests they name cannot be read")
        return {dataset: dict(aliases)}

    def _resolve(self, dataset: str | None, groups: dict[str, dict[str, Any]],
                 read: bool = True) -> str | None:
        """The dataset an alias read (or, `read=False`, a rollback) acts on: the one named, else
        the registry's `dataset`, else the only dataset with aliases, else (reads only)
        `prefer`. None when the registry has no aliases; RegistryError when it is ambiguous."""
        if dataset is not None:
            if dataset != UNATTRIBUTED and not valid_dataset(dataset):
                raise RegistryError(f"not a dataset name: {str(dataset)[:120]!r}")
            return dataset
        if self.dataset is not None:
            return self.dataset
        named = sorted(d for d, a in groups.items() if a)
        if len(named) == 1:
            return named[0]
        if read and self.prefer is not None and (self.prefer in named or not named):
            return self.prefer
        if not named:
            return None
        raise RegistryError(f"registry {self.url} holds the models of several datasets "
                            f"({', '.join(repr(d) for d in named)}): name one (--dataset, or "
                            "CREDIT_RISK_DATASET)")

    def aliases(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every dataset's aliases: {dataset: {alias: {"version", "set_at", "by", "reason",
        "replaced"}}}, checked as `alias` checks them."""
        groups = self._groups(self._checked_state(), unknown=UNATTRIBUTED)  # listed, as such
        return {d: a for d, a in groups.items() if a}

    def resolve_dataset(self, dataset: str | None = None) -> str | None:
        """The dataset `alias(name, dataset)` reads (see _resolve)."""
        return self._resolve(dataset, self._groups(self._checked_state()))

    def alias(self, name: str, dataset: str | None = None) -> dict[str, Any] | None:
        """{"alias", "dataset", "version", "set_at", "by", "reason", "replaced"} of `dataset`
        (default: see _resolve), or None when unset. With trusted keys, a state not signed by
        one, or older than one seen before, raises (SignatureError, AliasStateError); several
        datasets and none named or preferred raise RegistryError."""
        groups = self._groups(self._checked_state())
        resolved = self._resolve(dataset, groups)
        record = groups.get(resolved, {}).get(name) if resolved is not None else None
        return {**record, "alias": name, "dataset": resolved} if record else None

    def alias_version(self, name: str, dataset: str | None = None) -> str | None:
        record = self.alias(name, dataset)
        return record["version"] if record else None

    def _reconcile(self) -> None:
        """Under the lock: complete the one change a crash interrupted (the record whose parent
        is the current state's change), or rebuild an unusable state from the newest record of
        the chain. Any other record is ignored and logged. Never raises for bad records."""
        _, records = self._history_records()
        if self.trusted_keys:  # only records signed by a trusted key may move an alias
            records = [r for r in records if self._signed_by_trusted(r)]
        try:
            state: dict[str, Any] | None = self._state()
            problem = None
        except AliasStateError as exc:
            state, problem = None, str(exc)
        if state is not None and not state["file"] and records:
            problem = f"{STATE_FILE} is missing"
        elif state is not None and self.trusted_keys and state["file"] and records and (
                state["record"] is None or not self._signed_by_trusted(state["record"])):
            problem = f"{STATE_FILE} is not signed by a trusted key"
        if problem is not None:
            if not records:
                _warn_once(f"state:{self.url}:{problem}", "registry %s: %s; no history record "
                           "to rebuild it from", self.url, problem)
                return
            head = max(records, key=lambda r: (r["seq"], r["change"]))
            log.warning("registry %s: %s; rebuilt from the newest history record %s (seq %s)",
                        self.url, problem, head["change"], head["seq"])
            self._write_state(head, state, rebuild=True)
            return
        assert state is not None
        path = self._forward(records, state["change"], state["seq"])
        final_seq = path[-1]["seq"] if path else state["seq"]
        on_path = {r["change"] for r in path}
        for r in records:
            if r["seq"] > state["seq"] and r["change"] not in on_path:
                _warn_once(f"orphan:{self.url}:{r['change']}", "registry %s: history record %s "
                           "(seq %s) ignored: it does not follow the alias state %s (seq %s)",
                           self.url, r["change"], r["seq"], state["change"], final_seq)
        if len(path) == 1:
            log.warning("registry %s: completing alias change %s interrupted by a crash",
                        self.url, path[0]["change"])
        elif path:
            log.warning("registry %s: the alias state %s (seq %s) is older than the history "
                        "that follows it (a replayed state?): moved forward to %s (seq %s)",
                        self.url, state["change"], state["seq"], path[-1]["change"],
                        path[-1]["seq"])
        if path:
            self._write_state(path[-1], state)

    def _forward(self, records: list[dict[str, Any]], change: str | None,
                 seq: int) -> list[dict[str, Any]]:
        """The records that follow the change `change` (sequence number `seq`) one after the
        other, as long as each has exactly one successor: normally none, or the one record of
        an interrupted change."""
        path: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            nxt = [r for r in records if r.get("parent") == change and r["seq"] == seq + 1
                   and r["change"] not in seen]
            if len(nxt) > 1:
                _warn_once(f"fork:{self.url}:{change}", "registry %s: %d history records "
                           "follow the alias change %s: none applied", self.url, len(nxt), change)
            if len(nxt) != 1:
                return path
            path.append(nxt[0])
            seen.add(nxt[0]["change"])
            change, seq = nxt[0]["change"], nxt[0]["seq"]

    def _write_state(self, record: dict[str, Any], read: dict[str, Any] | None,
                     rebuild: bool = False) -> bool:
        """Replace state.json by `record`. On an object store only if state.json is still the
        one `read` was read from (created when there was none); when it is not, another writer
        has moved it on and this write is dropped (the state only ever moves forward): False."""
        data = json.dumps(record, indent=2).encode()
        path = self._path("aliases", STATE_FILE)
        if self._local:
            self._write_atomic(path, data)
        else:
            exists = bool(read and read["file"])
            etag = read.get("etag") if read else None
            if rebuild and read is None:  # unreadable: replace what is there now
                try:
                    info = self.fs.info(path)
                except FileNotFoundError:
                    info = None
                exists, etag = info is not None, (info or {}).get("ETag")
            try:
                self._put(path, data, create=not exists, etag=etag)
            except _Conflict:
                log.info("registry %s: alias state moved on by another writer; state.json "
                         "not replaced by change %s", self.url, record.get("change"))
                return False
        for name in LEGACY_ALIASES:  # migrated: state.json is the one record now
            path = self._path("aliases", f"{name}.json")
            if self.fs.exists(path):
                self.fs.rm(path)
        return True

    def _change(self, action: str, dataset: str | None,
                plan: Callable[[dict[str, Any], str], _Plan], by: str | None) -> Any:
        """Set several aliases of one dataset in one record: history record first, then
        state.json. `plan(the dataset's current aliases, dataset)` returns (targets, reasons,
        result); it runs again on the state a concurrent writer left when that writer won the
        race (object stores). `dataset` None: the one _resolve names for a rollback."""
        for attempt in range(ALIAS_ATTEMPTS):
            self._reconcile()
            state = self._state()
            base = state["record"] or {}
            signed = self._signed_for_change(base)
            if signed is False and "signature" in base:
                # _reconcile found no signed record to rebuild it from: never re-sign it
                raise SignatureError(
                    f"the alias record of {self.url} is not signed by a trusted key and no "
                    "signed history record can rebuild it: no alias change is built on it. "
                    f"Restore aliases/ from a backup, or delete aliases/{STATE_FILE} to start "
                    "the aliases afresh (nothing serves until the next promote)")
            groups = self._groups(state, unknown=dataset)  # as before datasets
            target = self._resolve(dataset, groups, read=False)
            if signed is False and any(groups.values()):
                # Unsigned (before keys, or stripped by a writer): nothing of it is signed
                # over; each dataset's champion needs its own signed promote.
                log.warning("registry %s: the alias record is not signed: none of its aliases "
                            "(%s) is carried into the signed one; promote each dataset's "
                            "champion with the signing key", self.url, ", ".join(sorted(groups)))
                groups = {}
            if target is None:
                raise RegistryError(f"no previous champion to roll back to: registry {self.url} "
                                    "has no aliases yet")
            current: dict[str, Any] = groups.get(target, {})
            targets, reasons, result = plan(current, target)
            changed = {n: v for n, v in targets.items()
                       if (current.get(n) or {}).get("version") != v}
            if not changed:
                return result
            now = _now()
            who = by or getpass.getuser()
            aliases = dict(current)
            changes = []
            for name, version in changed.items():
                replaced = (current.get(name) or {}).get("version")
                aliases[name] = {"version": version, "set_at": now.isoformat(), "by": who,
                                 "reason": reasons[name], "replaced": replaced}
                changes.append({"alias": name, "version": version, "replaced": replaced,
                                "reason": reasons[name], "dataset": target})
            # The dataset older releases see in "aliases": the registry's first, kept.
            mirror = state.get("aliases_dataset") if state.get("datasets") is not None \
                else next(iter(groups), None)
            if not isinstance(mirror, str):
                mirror = target
            groups[target] = aliases
            change = uuid.uuid4().hex
            seq = state["seq"] + 1
            record: dict[str, Any] = {
                "format": RECORD_FORMAT, "change": change, "seq": seq,
                "parent": state["change"], "action": action, "at": now.isoformat(), "by": who,
                "dataset": target, "changes": changes, "datasets": groups,
                "aliases_dataset": mirror, "aliases": groups.get(mirror, {})}
            record = json.loads(json.dumps(record, default=str))
            if self.signing_key is not None:
                record = signing.sign(record, self.signing_key, signing.ALIASES_FORMAT)
            data = json.dumps(record, indent=2).encode()
            if self._local:  # under the lock
                stamp = f"{seq:010d}-{now:%Y%m%dT%H%M%S%f}Z-{change[:8]}-{action}.json"
                self._write_atomic(self._path("history", stamp), data)
                self._write_state(record, state)
            else:
                # The name is the sequence number only: one writer gets each link of the chain.
                try:
                    self._put(self._path("history", f"{seq:010d}.json"), data, create=True)
                except _Conflict:
                    log.info("registry %s: another writer took alias change %s first; "
                             "retrying on top of it", self.url, seq)
                    time.sleep(random.uniform(0.005, 0.02) * min(attempt + 1, 10))
                    continue
                if not self._write_state(record, state):
                    self._reconcile()  # moved on by another writer: ours is applied by now
            self._seen_seq = max(self._seen_seq, seq)
            return result
        raise RegistryError(f"registry {self.url}: alias change not made: other writers changed "
                            f"the aliases {ALIAS_ATTEMPTS} times in a row; try again")

    def _signed_for_change(self, record: dict[str, Any]) -> bool | None:
        """Whether a signing writer may build on this alias record: signed by a trusted key (by
        its own key when none is trusted); None for a writer that does not sign."""
        if self.signing_key is None:
            return None
        keys = list(self.trusted_keys) or [self.signing_key.public_key()]
        try:
            signing.verify(record, keys, signing.ALIASES_FORMAT)
        except signing.SigningError:
            return False
        return True

    def _check_can_change_aliases(self) -> None:
        self._check_can_sign("promote and rollback need the signing key where they run, since "
                             "serving refuses an alias record not signed by a trusted key")

    def _verified_dataset(self, version: str, dataset: str | None = None) -> str:
        """Verify a version; return its dataset, which must be `dataset` when one is given."""
        own = dataset_of(version, self.verify(version))
        if dataset is not None and own != dataset:
            raise RegistryError(f"version {version} is a model of dataset {own!r}, not of "
                                f"{dataset!r}: refused")
        return own

    def set_alias(self, name: str, version: str, reason: str, by: str | None = None) -> None:
        """Point one alias of the version's dataset at it (checked first); recorded in the
        history."""
        self._check_can_change_aliases()
        dataset = self._verified_dataset(version)
        with self._alias_lock():
            self._change("set", dataset, lambda *_: ({name: version}, {name: reason}, None), by)

    def promote(self, version: str, reason: str, by: str | None = None,
                dataset: str | None = None) -> None:
        """Make a version the champion of its dataset, after verifying it; that dataset's old
        champion becomes its `previous`. Both aliases change in one atomic record. `dataset`,
        when given, must be the version's."""
        self._check_can_change_aliases()
        own = self._verified_dataset(version, dataset)
        with self._alias_lock():
            self._change("promote", own,
                         lambda current, _: _promotion(current, version, reason), by)

    def rollback(self, reason: str, by: str | None = None, dataset: str | None = None) -> str:
        """Swap champion and previous of a dataset (default: the registry's `dataset`, else
        its only one) after verifying previous, which must be a model of that dataset; return
        the version now serving."""
        self._check_can_change_aliases()
        verified: set[str] = set()

        def plan(current: dict[str, Any], target: str) -> _Plan:
            previous = (current.get("previous") or {}).get("version")
            if not previous:
                raise RegistryError("no previous champion to roll back to"
                                    + (f" for dataset {target!r}" if target else ""))
            if previous not in verified:
                # An old registry's unattributed aliases: whatever their manifests say.
                self._verified_dataset(previous, target if target != UNATTRIBUTED else None)
                verified.add(previous)
            targets, reasons, _ = _promotion(current, previous, f"rollback: {reason}")
            return targets, reasons, previous

        with self._alias_lock():
            result: str = self._change("rollback", dataset, plan, by)
            return result

    def _chain(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """This release's records on the chain that ends at the current state (plus the one
        record that follows it, if any), oldest first; the others are left out and logged."""
        by_id: dict[str, dict[str, Any]] = {}
        for r in records:
            by_id.setdefault(r["change"], r)
        try:
            state: dict[str, Any] | None = self._state()
        except AliasStateError:
            state = None
        head: dict[str, Any] | None
        if state is None or (not state["file"] and records):
            usable = [r for r in records if self._signed_by_trusted(r) is not False]
            head = max(usable, key=lambda r: (r["seq"], r["change"])) if usable else None
        else:
            head = state["record"]
            if head is not None:
                head = by_id.get(head["change"], head)
            trusted = [r for r in records if self._signed_by_trusted(r) is not False]
            ahead = self._forward(trusted, state["change"], state["seq"])
            if ahead:
                head = ahead[-1]
        chain: list[dict[str, Any]] = []
        seen: set[str] = set()
        while head is not None and head["change"] not in seen:
            seen.add(head["change"])
            chain.append(head)
            parent = by_id.get(head.get("parent") or "")
            head = parent if parent is not None and parent["seq"] == head["seq"] - 1 else None
        for r in records:
            if r["change"] not in seen:
                _warn_once(f"offchain:{self.url}:{r['change']}", "registry %s: history record "
                           "%s (seq %s) is not on the chain of alias changes: not listed",
                           self.url, r["change"], r["seq"])
        return chain[::-1]

    def history(self) -> list[dict[str, Any]]:
        """Every alias change, oldest first, in the order of the chain of changes (never by a
        clock): {"alias", "version", "set_at", "by", "reason", "replaced", "dataset"} (None for
        records of releases without datasets), plus "action", "change", "seq" and "verified"
        (with trusted keys: whether a trusted key signed the record; None without keys) for
        records of this release. Unreadable records are
        skipped with a warning."""
        old, records = self._history_records()
        out = []
        for entry in old:
            if "changes" not in entry:  # the oldest release: one record per alias change
                out.append({**entry, "dataset": None,
                            "verified": False if self.trusted_keys else None})
                continue
            for c in entry["changes"]:
                out.append({"alias": c["alias"], "version": c["version"],
                            "set_at": entry.get("at"), "by": entry.get("by"),
                            "reason": c.get("reason"), "replaced": c.get("replaced"),
                            "action": entry.get("action"), "change": entry.get("id"),
                            "dataset": None,
                            "verified": False if self.trusted_keys else None})
        for entry in self._chain(records):
            verified = self._signed_by_trusted(entry)
            for c in entry["changes"]:
                dataset = c.get("dataset", entry.get("dataset"))
                out.append({"alias": c["alias"], "version": c["version"], "set_at": entry["at"],
                            "by": entry["by"], "reason": c.get("reason"),
                            "replaced": c.get("replaced"), "action": entry.get("action"),
                            "change": entry["change"], "seq": entry["seq"],
                            "dataset": dataset if isinstance(dataset, str) else None,
                            "verified": verified})
        return out
