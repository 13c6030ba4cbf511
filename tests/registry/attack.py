"""The attack of issue 8, for the registry tests: what an attacker with write access to the
registry stores (a pickle whose __reduce__ runs code on unpickling), with the new hashes
written into manifest.json so that checksums alone cannot tell. Only a signature stops it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import joblib

from credit_risk.registry import sha256_bytes


class Payload:
    """Unpickling it creates the file `marker`: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_pickle(marker: Path) -> bytes:
    buf = io.BytesIO()
    joblib.dump(Payload(marker), buf)
    return buf.getvalue()


def replace_files(folder: Path, replaced: dict[str, bytes]) -> None:
    """Write the files into a version's folder and their SHA-256 (and size) into its
    manifest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, data in replaced.items():
        (folder / name).write_bytes(data)
        manifest["files"][name] = sha256_bytes(data)
        manifest.setdefault("sizes", {})[name] = len(data)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
