"""Model versions for registry tests that need real ones (serving loads them): a trained
version copied into another registry through the public API, signed by that registry's key."""

from __future__ import annotations

from credit_risk.registry.store import Registry

WRITTEN = ("version", "created_at", "files", "sizes", "signature")  # set by the registry


def copy_version(source: Registry, version: str, target: Registry, note: str) -> str:
    """Publish the files and metadata of `version` of `source` as a new version of `target`
    (signed when `target` has a signing key); `note` goes in the manifest as `copy_of`."""
    manifest = source.verify(version)
    files = {name: source.read_file(version, name, manifest) for name in manifest["files"]}
    meta = {k: v for k, v in manifest.items() if k not in WRITTEN}
    return target.publish(files, {**meta, "copy_of": note})
