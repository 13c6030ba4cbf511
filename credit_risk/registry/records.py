"""The registry's records as typed models, validated on every read and write.

- `Manifest`: a version's manifest. The registry's own fields (version, created_at, dataset,
  files, sizes, signature) are typed; the rest is the publisher's metadata (model, metrics,
  threshold, ...), kept as given.
- `AliasRecord`: one link of the alias chain (``history/<seq>.json``; ``aliases/state.json``
  holds a copy of the newest). It carries every dataset's aliases after the change, the
  change itself, its sequence number and the SHA-256 of the record it follows (`parent`).

A record of another shape (an earlier release's, a hand-made one) fails validation with a
message that says what to do; it is never read as something else.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from credit_risk.registry import signing
from credit_risk.registry.errors import RegistryError

MANIFEST = "manifest.json"
RECORD_FORMAT = 3
MAX_DATASET_CHARS = 100
REPUBLISH = "re-publish the model with this release"
REPROMOTE = "re-promote the champion with this release"


def valid_dataset(name: Any) -> bool:
    """A dataset name: at most 100 printable characters, no '/' or '\\', not starting with
    '.', no blanks around it; a name, never a path."""
    return isinstance(name, str) and 0 < len(name) <= MAX_DATASET_CHARS and name.isprintable() \
        and name == name.strip() and "/" not in name and "\\" not in name \
        and not name.startswith(".")


def valid_file_name(name: Any) -> bool:
    """A file name inside a version folder: no path, not hidden, not the manifest."""
    return isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name \
        and not name.startswith(".") and name != MANIFEST


def _dataset(name: str) -> str:
    if not valid_dataset(name):
        raise ValueError(f"dataset name {str(name)[:120]!r} refused: a dataset is named by at "
                         f"most {MAX_DATASET_CHARS} printable characters, without '/' or '\\', "
                         "not starting with '.'")
    return name


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def errors_of(exc: ValidationError) -> str:
    """A ValidationError in one line: each bad field and why."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
                     for e in exc.errors()[:5])


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    algorithm: str
    format: str
    key_id: str
    value: str


class Manifest(BaseModel):
    """A version's manifest: the SHA-256 and size of every file, and the publisher's data."""

    model_config = ConfigDict(extra="allow", frozen=True)
    version: str
    created_at: str
    dataset: str
    files: dict[str, str]
    sizes: dict[str, int]
    signature: Signature | None = None

    @field_validator("files", "sizes")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [n for n in value if not valid_file_name(n)]
        if bad:
            raise ValueError(f"not a file name: {bad[0][:120]!r}")
        return value

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: dict[str, int]) -> dict[str, int]:
        if any(v < 0 for v in value.values()):
            raise ValueError("a size is negative")
        return value

    @classmethod
    def parse(cls, version: str, raw: Any) -> Manifest:
        """The manifest of `version` as read; RegistryError naming what is wrong."""
        if isinstance(raw, dict) and ("sizes" not in raw or "dataset" not in raw) \
                and isinstance(raw.get("files"), dict):
            missing = "file sizes" if "sizes" not in raw else "dataset"
            raise RegistryError(f"version {version}: the manifest has no {missing} (an earlier "
                                f"release wrote it): {REPUBLISH}")
        try:
            manifest = cls.model_validate(raw)
        except ValidationError as exc:
            if isinstance(raw, dict) and any(e["loc"][:1] in (("files",), ("sizes",))
                                             for e in exc.errors()):
                raise RegistryError(f"version {version}: the manifest's file list is "
                                    f"malformed: {errors_of(exc)}") from exc
            raise RegistryError(f"version {version}: the manifest is malformed: "
                                f"{errors_of(exc)}") from exc
        if set(manifest.sizes) != set(manifest.files):
            raise RegistryError(f"version {version}: the manifest's file list is malformed: "
                                "files and sizes name different files")
        return manifest

    def dataset_name(self) -> str:
        """The manifest's dataset; RegistryError when it is not a dataset name."""
        try:
            return _dataset(self.dataset)
        except ValueError as exc:
            raise RegistryError(f"version {self.version}: {exc}") from exc


class AliasEntry(BaseModel):
    """Where one alias points, since when, by whom and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    set_at: str
    by: str
    reason: str
    replaced: str | None = None


class Change(BaseModel):
    """One alias moved by a change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alias: str
    version: str
    replaced: str | None
    reason: str


class AliasRecord(BaseModel):
    """One link of the alias chain: every dataset's aliases after one change (see chain.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal[3]
    seq: int = Field(ge=1)
    parent: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None
    change: str
    action: Literal["promote", "rollback", "set"]
    at: str
    by: str
    dataset: str
    changes: list[Change]
    datasets: dict[str, dict[str, AliasEntry]]
    signature: Signature | None = None

    @field_validator("dataset")
    @classmethod
    def _one(cls, value: str) -> str:
        return _dataset(value)

    @field_validator("datasets")
    @classmethod
    def _all(cls, value: dict[str, dict[str, AliasEntry]]) -> dict[str, dict[str, AliasEntry]]:
        for name in value:
            _dataset(name)
        return value

    @classmethod
    def parse(cls, raw: Any, where: str) -> AliasRecord:
        """A record as read from `where`; RegistryError naming what is wrong."""
        if isinstance(raw, dict) and raw.get("format") != RECORD_FORMAT and (
                "aliases" in raw or "alias" in raw or "change" in raw):
            raise RegistryError(f"{where}: an alias record of an earlier release (format "
                                f"{raw.get('format')!r}): {REPROMOTE}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise RegistryError(f"{where}: not an alias record: {errors_of(exc)}") from exc

    def body(self) -> dict[str, Any]:
        """The JSON object as stored (signature included when signed)."""
        body = self.model_dump(mode="json")
        if body["signature"] is None:
            del body["signature"]
        return body

    def digest(self) -> str:
        """SHA-256 of the record's canonical JSON: what the next record names as `parent`."""
        return hashlib.sha256(signing.canonical_json(self.body())).hexdigest()

    def encode(self) -> bytes:
        return json.dumps(self.body(), indent=2).encode()
