"""Model registry on an fsspec URL: immutable signed versions, crash-safe aliases.

Layout under the registry root::

    models/<version>/manifest.json   written last; a version without it does not exist; lists
                                     the SHA-256 of every file and carries the Ed25519
                                     signature over all of that (credit_risk.registry.signing)
    models/<version>/...             the model files, reports, model card
    aliases/state.json               every alias in one record, replaced atomically:
                                     {"format": 1, "change": <id>, "aliases": {name: {...}}}
    history/<time>-<action>.json     one file per change, written BEFORE state.json (a
                                     write-ahead record): who, when, why, and the aliases after

A change is committed once its history record is written: a registry opened after a crash
between the two writes applies the newest history record that state.json does not reflect
yet. Registries of older releases (aliases/champion.json, aliases/previous.json) are read as
they are and migrated to state.json on their first alias change.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
STALE_AFTER_S = 3600.0  # leftovers of a writer that died; a live writer's are younger
_warned: set[str] = set()


class RegistryError(CreditRiskError, RuntimeError):
    """A version or alias is missing or inconsistent."""


class ChecksumError(RegistryError):
    """A file of a version does not match the SHA-256 in its manifest."""


class SignatureError(RegistryError):
    """A version is unsigned, or not signed by a trusted key, while trusted keys are set."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class Registry:
    def __init__(self, url: str, signing_key: Ed25519PrivateKey | None = None,
                 trusted_keys: Iterable[Ed25519PublicKey] = ()):
        self.url = str(url)
        self.signing_key = signing_key
        self.trusted_keys = tuple(trusted_keys)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except ImportError as exc:  # e.g. s3:// without s3fs
            raise RegistryError(f"registry {self.url}: {exc}") from exc
        except ValueError as exc:
            raise RegistryError(f"registry {self.url}: not a usable URL: {exc}") from exc
        if self._local:
            self._open_local()

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The registry of the settings, with their signing key and trusted keys."""
        try:
            private = (signing.load_private_key(settings.signing_key_file)
                       if settings.signing_key_file else None)
            trusted = [signing.load_public_key(p) for p in settings.trusted_keys]
        except signing.SigningError as exc:
            raise SignatureError(str(exc)) from exc
        registry = cls(settings.registry_url, signing_key=private, trusted_keys=trusted)
        if not trusted and registry.url not in _warned:
            _warned.add(registry.url)
            log.warning("registry %s: manifests are not signed/verified (%s; set "
                        "CREDIT_RISK_TRUSTED_KEYS): whoever can write the registry decides "
                        "what is served", registry.url,
                        "signed, but no trusted keys" if private else "no keys configured")
        return registry

    @property
    def _local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def _open_local(self) -> None:
        """Finish a change a crash interrupted and clean old leftovers (local registries)."""
        if not self.fs.exists(self.root):
            return
        try:
            with self._alias_lock():
                self._reconcile()
            self._clean_leftovers()
        except OSError as exc:  # e.g. a read-only mount: readers still work
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
        an object store has no locks, so changes there are last-writer-wins."""
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
        with self.fs.open(tmp, "wb") as fh:
            fh.write(data)
        self.fs.mv(tmp, path)

    def _read_json(self, path: str) -> Any:
        with self.fs.open(path, "rb") as fh:
            return json.loads(fh.read())

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
        self._check_can_sign()
        checksums = {name: sha256_bytes(data) for name, data in sorted(files.items())}
        version = version or self.new_version_id()
        if self.fs.exists(self._path("models", version)):
            raise RegistryError(f"version {version} exists already")
        manifest = {k: v for k, v in manifest.items() if k != signing.SIGNATURE_FIELD}
        manifest = {**manifest, "version": version, "created_at": _now().isoformat(),
                    "files": checksums}
        manifest = json.loads(json.dumps(manifest, default=str))  # what readers will see
        if self.signing_key is not None:
            manifest = signing.sign(manifest, self.signing_key)
        staging = self._path("models", f".staging-{uuid.uuid4().hex}")
        self.fs.makedirs(staging, exist_ok=True)
        for name, data in files.items():
            with self.fs.open(f"{staging}/{name}", "wb") as fh:
                fh.write(data)
        with self.fs.open(f"{staging}/{MANIFEST}", "wb") as fh:
            fh.write(json.dumps(manifest, indent=2).encode())
        target = self._path("models", version)
        if self._local:
            try:  # one rename: the version appears whole; never into an existing folder
                os.rename(staging, target)
            except OSError as exc:
                self.fs.rm(staging, recursive=True)
                raise RegistryError(f"version {version} exists already") from exc
        else:
            self.fs.mv(staging, target, recursive=True)
        return version

    def _check_can_sign(self) -> None:
        if not self.trusted_keys:
            return
        if self.signing_key is None:
            raise SignatureError("trusted keys are configured but no signing key "
                                 "(CREDIT_RISK_SIGNING_KEY_FILE): an unsigned version could "
                                 "never be promoted")
        kid = signing.key_id(self.signing_key.public_key())
        if kid not in {signing.key_id(k) for k in self.trusted_keys}:
            raise SignatureError(f"the signing key {kid} is not one of the trusted keys: its "
                                 "versions could never be promoted")

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
        """A version's manifest as stored, NOT verified (for listings; see verify)."""
        if not version or "/" in version or version.startswith("."):
            raise RegistryError(f"not a version id: {version!r}")
        try:
            return self._read_json(self._path("models", version, MANIFEST))
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

    def read_file(self, version: str, name: str, manifest: dict[str, Any] | None = None) -> bytes:
        """A file of a version, checked against the SHA-256 of its manifest (a manifest passed
        in must come from verify; without one, the manifest's signature is checked here)."""
        if manifest is None:
            manifest = self.manifest(version)
            self.check_signature(version, manifest)
        expected = manifest["files"].get(name)
        if expected is None:
            raise RegistryError(f"version {version} has no file {name!r}")
        try:
            with self.fs.open(self._path("models", version, name), "rb") as fh:
                data = fh.read()
        except FileNotFoundError as exc:
            raise ChecksumError(f"{version}/{name}: listed in the manifest but missing") from exc
        if sha256_bytes(data) != expected:
            raise ChecksumError(f"{version}/{name}: SHA-256 does not match the manifest")
        return data

    def verify(self, version: str) -> dict[str, Any]:
        """Check the signature (when trusted keys are set) and every file; return the manifest."""
        manifest = self.manifest(version)
        self.check_signature(version, manifest)
        for name in manifest["files"]:
            self.read_file(version, name, manifest)
        base = self._path("models", version)
        listed = {*manifest["files"], MANIFEST}
        extra = sorted(n for n in (p.rstrip("/").rsplit("/", 1)[-1]
                                   for p in self.fs.ls(base, detail=False)) if n not in listed)
        if extra:
            raise ChecksumError(f"version {version}: files not in the manifest: "
                                f"{', '.join(extra)}")
        return manifest

    # -- aliases ----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        """The alias record: state.json, or an older release's one file per alias."""
        try:
            state = self._read_json(self._path("aliases", STATE_FILE))
        except FileNotFoundError:
            pass
        else:
            return {"change": state.get("change"), "aliases": dict(state.get("aliases", {}))}
        aliases = {}
        for name in LEGACY_ALIASES:
            try:
                record = self._read_json(self._path("aliases", f"{name}.json"))
            except FileNotFoundError:
                continue
            aliases[name] = {k: v for k, v in record.items() if k != "alias"}
        return {"change": None, "aliases": aliases}

    def alias(self, name: str) -> dict[str, Any] | None:
        """{"alias", "version", "set_at", "by", "reason", "replaced"}, or None when unset."""
        record = self._state()["aliases"].get(name)
        return {**record, "alias": name} if record else None

    def alias_version(self, name: str) -> str | None:
        record = self.alias(name)
        return record["version"] if record else None

    def _history_paths(self) -> list[str]:
        base = self._path("history")
        if not self.fs.exists(base):
            return []
        return sorted(p for p in self.fs.ls(base, detail=False)
                      if not p.rsplit("/", 1)[-1].startswith("."))

    def _reconcile(self) -> None:
        """Apply the newest history record if state.json does not reflect it (under the lock)."""
        paths = self._history_paths()
        if not paths:
            return
        entry = self._read_json(paths[-1])
        if "aliases" not in entry or "id" not in entry:  # an older release's record
            return
        if self._state()["change"] != entry["id"]:
            log.warning("registry %s: completing alias change %s interrupted by a crash",
                        self.url, entry["id"])
            self._write_state(entry["id"], entry["aliases"])

    def _write_state(self, change: str, aliases: dict[str, Any]) -> None:
        data = json.dumps({"format": 1, "change": change, "aliases": aliases}, indent=2)
        self._write_atomic(self._path("aliases", STATE_FILE), data.encode())
        for name in LEGACY_ALIASES:  # migrated: state.json is the one record now
            path = self._path("aliases", f"{name}.json")
            if self.fs.exists(path):
                self.fs.rm(path)

    def _change(self, action: str, targets: dict[str, str], reasons: dict[str, str],
                by: str | None) -> None:
        """Set several aliases in one record: history record first, then state.json."""
        self._reconcile()
        state = self._state()
        current: dict[str, Any] = state["aliases"]
        changed = {n: v for n, v in targets.items()
                   if (current.get(n) or {}).get("version") != v}
        if not changed:
            return
        now = _now()
        who = by or getpass.getuser()
        aliases = dict(current)
        changes = []
        for name, version in changed.items():
            replaced = (current.get(name) or {}).get("version")
            aliases[name] = {"version": version, "set_at": now.isoformat(), "by": who,
                             "reason": reasons[name], "replaced": replaced}
            changes.append({"alias": name, "version": version, "replaced": replaced,
                            "reason": reasons[name]})
        change = uuid.uuid4().hex
        entry = {"format": 1, "id": change, "action": action, "at": now.isoformat(), "by": who,
                 "changes": changes, "aliases": aliases}
        stamp = f"{now:%Y%m%dT%H%M%S%f}Z-{change[:8]}-{action}.json"
        self._write_atomic(self._path("history", stamp), json.dumps(entry, indent=2).encode())
        self._write_state(change, aliases)

    def set_alias(self, name: str, version: str, reason: str, by: str | None = None) -> None:
        """Point one alias at a version (checked first); recorded in the history."""
        self.verify(version)
        with self._alias_lock():
            self._change("set", {name: version}, {name: reason}, by)

    def promote(self, version: str, reason: str, by: str | None = None) -> None:
        """Make a version the champion, after verifying it; the old champion becomes
        `previous`. Both aliases change in one atomic record."""
        self.verify(version)
        with self._alias_lock():
            self._promote(version, reason, by, "promote")

    def _promote(self, version: str, reason: str, by: str | None, action: str) -> None:
        self._reconcile()
        old = self.alias_version("champion")
        if old == version:
            return
        targets: dict[str, str] = {}
        reasons: dict[str, str] = {}
        if old:
            targets["previous"] = old
            reasons["previous"] = f"replaced by {version}: {reason}"
        targets["champion"], reasons["champion"] = version, reason
        self._change(action, targets, reasons, by)

    def rollback(self, reason: str, by: str | None = None) -> str:
        """Swap champion and previous (after verifying previous); return the version now
        serving."""
        with self._alias_lock():
            self._reconcile()
            previous = self.alias_version("previous")
            if not previous:
                raise RegistryError("no previous champion to roll back to")
            self.verify(previous)
            self._promote(previous, f"rollback: {reason}", by, "rollback")
            return previous

    def find(self, key: str, value: Any) -> str | None:
        """The newest version whose manifest has `key == value` (e.g. the run that made it)."""
        return next((v for v in reversed(self.versions())
                     if self.manifest(v).get(key) == value), None)

    def history(self) -> list[dict[str, Any]]:
        """Every alias change, oldest first: {"alias", "version", "set_at", "by", "reason",
        "replaced"} (plus "action" and "change" for records of this release)."""
        out = []
        for path in self._history_paths():
            entry = self._read_json(path)
            if "changes" not in entry:  # an older release: one record per alias change
                out.append(entry)
                continue
            for c in entry["changes"]:
                out.append({"alias": c["alias"], "version": c["version"], "set_at": entry["at"],
                            "by": entry["by"], "reason": c["reason"], "replaced": c["replaced"],
                            "action": entry["action"], "change": entry["id"]})
        return out
