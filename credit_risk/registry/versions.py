"""Model versions: publish (immutable, manifest written last), list, read and verify.

Layout: ``models/<version>/manifest.json`` plus the version's files. The manifest
(records.Manifest) lists the SHA-256 and size of every file and, with a signing key, carries
an Ed25519 signature over all of that (credit_risk.registry.signing); a folder without a
manifest is not a version. `verify` checks the signature (with trusted keys) and exactly the
files the manifest names; any other file in the folder (``.DS_Store``, an editor backup) is
reported as a warning, never served and never a failure.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from credit_risk.registry import signing
from credit_risk.registry.errors import ChecksumError, RegistryError, SignatureError
from credit_risk.registry.records import (
    MANIFEST,
    Manifest,
    sha256_bytes,
    valid_file_name,
)
from credit_risk.registry.storage import Storage

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 8 << 20  # a manifest (about 30 kB in practice)


def new_version_id() -> str:
    """A fresh, time-ordered version id."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S.%f}Z-{uuid.uuid4().hex[:6]}"


def check_can_sign(keys: signing.Keys, consequence: str) -> None:
    try:
        keys.check_can_sign(consequence)
    except signing.SigningError as exc:
        raise SignatureError(str(exc)) from exc


class Versions:
    """The immutable model versions of one registry."""

    def __init__(self, storage: Storage, keys: signing.Keys):
        self.storage = storage
        self.keys = keys

    def _folder(self, version: str) -> str:
        if not version or not isinstance(version, str) or not valid_file_name(version):
            raise RegistryError(f"not a version id: {str(version)[:120]!r}")
        return self.storage.path("models", version)

    def publish(self, files: dict[str, bytes], metadata: dict[str, Any],
                version: str | None = None) -> str:
        """Store a new immutable version (signed when a signing key is set); return its id."""
        if MANIFEST in files:
            raise RegistryError("the manifest is written by the registry")
        bad = sorted(n for n in files if not valid_file_name(n))
        if bad:
            raise RegistryError(f"not a file name for a version: {', '.join(bad)}")
        check_can_sign(self.keys, "its versions could never be promoted")
        version = version or new_version_id()
        body = {k: v for k, v in metadata.items() if k != signing.SIGNATURE_FIELD}
        body = {**body, "version": version, "created_at": datetime.now(UTC).isoformat(),
                "files": {n: sha256_bytes(d) for n, d in sorted(files.items())},
                "sizes": {n: len(d) for n, d in sorted(files.items())}}
        body = json.loads(json.dumps(body, default=str))  # what readers will see
        Manifest.parse(version, body).dataset_name()  # its shape, and a dataset by name
        if self.keys.signing_key is not None:
            body = signing.sign(body, self.keys.signing_key)
        data = json.dumps(body, indent=2).encode()
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"the manifest of {version} has {len(data)} bytes, over the "
                                f"limit of {MAX_MANIFEST_BYTES}")
        try:
            self.storage.publish_folder(self._folder(version), files, MANIFEST, data)
        except RegistryError as exc:
            raise RegistryError(f"version {version} exists already") from exc
        return version

    def _read_manifest(self, version: str) -> tuple[dict[str, Any], Manifest]:
        """(raw, parsed) manifest; FileNotFoundError when there is none."""
        path = f"{self._folder(version)}/{MANIFEST}"
        data = self.storage.read_bounded(path, MAX_MANIFEST_BYTES)
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise RegistryError(f"{version}/{MANIFEST}: not valid JSON: {exc}") from exc
        return raw, Manifest.parse(version, raw)

    def manifest(self, version: str) -> dict[str, Any]:
        """A version's manifest as stored, its shape checked, NOT verified (see verify)."""
        try:
            return self._read_manifest(version)[0]
        except FileNotFoundError as exc:
            raise RegistryError(f"no model version {version!r} in {self.storage.url}") from exc

    def check_signature(self, version: str, manifest: dict[str, Any]) -> str | None:
        """The id of the trusted key that signed the manifest; None when no keys are trusted."""
        if manifest.get("version") != version:
            raise SignatureError(f"version {version}: the manifest names version "
                                 f"{manifest.get('version')!r}")
        if not self.keys.trusted:
            return None
        try:
            return signing.verify(manifest, self.keys.trusted)
        except signing.SigningError as exc:
            raise SignatureError(f"version {version} refused: {exc}") from exc

    def listing(self) -> list[tuple[str, dict[str, Any]]]:
        """(version, manifest) of every published version, oldest first: only manifests that
        parse and (with trusted keys) are signed by one; others are skipped with a warning."""
        out = []
        for name in self.storage.names(self.storage.path("models")):
            if name.startswith("."):
                continue
            try:
                raw, _ = self._read_manifest(name)
                self.check_signature(name, raw)
            except FileNotFoundError:  # no manifest: not (yet) a version
                continue
            except (RegistryError, OSError) as exc:
                log.warning("registry %s: version %s not listed: %s", self.storage.url, name,
                            exc)
                continue
            out.append((name, raw))
        return out

    def _digest(self, version: str, name: str, manifest: Manifest, keep: bool) -> bytes | None:
        """Hash a file of a version in chunks against its manifest; its bytes when `keep`."""
        if name not in manifest.files:
            raise RegistryError(f"version {version} has no file {name!r}")
        size, label = manifest.sizes[name], f"{version}/{name}"
        try:
            digest, data, total = self.storage.hash_file(
                f"{self._folder(version)}/{name}", label, size, size, keep)
        except FileNotFoundError as exc:
            raise ChecksumError(f"{label}: listed in the manifest but missing") from exc
        if total != size or digest != manifest.files[name]:
            raise ChecksumError(f"{label}: SHA-256 does not match the manifest")
        return data

    def read_file(self, version: str, name: str,
                  manifest: dict[str, Any] | None = None) -> bytes:
        """A file of a version, checked against its manifest (a manifest passed in must come
        from verify; without one, the manifest's signature is checked here)."""
        if manifest is None:
            manifest = self.manifest(version)
            self.check_signature(version, manifest)
        data = self._digest(version, name, Manifest.parse(version, manifest), keep=True)
        assert data is not None
        return data

    def verify(self, version: str) -> tuple[dict[str, Any], list[str]]:
        """(manifest, names of files the manifest does not list) after checking the signature
        (with trusted keys) and every listed file, hashed in chunks, never held in memory."""
        raw = self.manifest(version)
        self.check_signature(version, raw)
        manifest = Manifest.parse(version, raw)
        for name in manifest.files:
            self._digest(version, name, manifest, keep=False)
        listed = {*manifest.files, MANIFEST}
        extra = [n for n in self.storage.names(self._folder(version)) if n not in listed]
        if extra:
            log.warning("registry %s: version %s: files not in the manifest, ignored: %s",
                        self.storage.url, version, ", ".join(extra))
        return raw, extra

    def fingerprint(self, version: str) -> Any:
        """The names and stamps of a version's files (cheap: no reads); None if unknown."""
        try:
            return tuple(self.storage.entries(self._folder(version)))
        except Exception:  # unknown layout or storage: the caller's backoff alone decides
            return None
