"""Ed25519 signatures of registry records: key files, key ids, sign and verify.

Two kinds of record are signed, each with its own format string, so that one can never be
replayed as the other: a version's manifest (``credit-risk-manifest-v1``) and an alias change
record, the one in ``aliases/state.json`` and its copy in ``history/``
(``credit-risk-aliases-v1``).

What is signed: the bytes ``<format> + "\n" + canonical_json(record without "signature")``,
where canonical JSON has sorted keys, no whitespace and UTF-8 text. The manifest lists the
SHA-256 (and size) of every file of the version, so its signature covers every file. The
signature is stored in the record itself::

    "signature": {"algorithm": "Ed25519", "format": "credit-risk-manifest-v1",
                  "key_id": "<first 16 hex digits of SHA-256 of the raw public key>",
                  "value": "<base64 of the 64-byte signature>"}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from credit_risk.errors import CreditRiskError

ALGORITHM = "Ed25519"
FORMAT = "credit-risk-manifest-v1"  # a version's manifest
ALIASES_FORMAT = "credit-risk-aliases-v1"  # an alias change record (state and history)
MESSAGE_PREFIX = b"credit-risk-manifest-v1\n"
SIGNATURE_FIELD = "signature"
PRIVATE_FILE = "signing_key.pem"
PUBLIC_FILE = "signing_key.pub.pem"


class SigningError(CreditRiskError, RuntimeError):
    """A key cannot be read, or a manifest is unsigned or wrongly signed."""


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def message(manifest: Mapping[str, Any], fmt: str = FORMAT) -> bytes:
    """The exact bytes a record's signature is over (a manifest's by default)."""
    return fmt.encode() + b"\n" + canonical_json(
        {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD})


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningError(f"cannot read the trusted key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"{path} is not an Ed25519 public key")
    return key


def sign(manifest: Mapping[str, Any], private: Ed25519PrivateKey,
         fmt: str = FORMAT) -> dict[str, Any]:
    """The record (a manifest by default) with its signature field."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    value = private.sign(message(body, fmt))
    return {**body, SIGNATURE_FIELD: {"algorithm": ALGORITHM, "format": fmt,
                                      "key_id": key_id(private.public_key()),
                                      "value": base64.b64encode(value).decode()}}


def verify(manifest: Mapping[str, Any], trusted: Iterable[Ed25519PublicKey],
           fmt: str = FORMAT) -> str:
    """The id of the trusted key that signed the record as a `fmt` record (a manifest by
    default); SigningError if none did."""
    what = "the manifest" if fmt == FORMAT else "the alias record"
    sig = manifest.get(SIGNATURE_FIELD)
    if not sig:
        raise SigningError(f"{what} is not signed")
    if not isinstance(sig, dict) or sig.get("algorithm") != ALGORITHM or \
            sig.get("format") != fmt:
        raise SigningError(f"{what} has an unknown signature format (expected {fmt}): "
                           f"{sig!r:.200}")
    keys = {key_id(k): k for k in trusted}
    kid = sig.get("key_id")
    if kid not in keys:
        raise SigningError(f"signed by key {kid!r}, which is not a trusted key "
                           f"(trusted: {', '.join(sorted(keys)) or 'none'})")
    try:
        keys[kid].verify(base64.b64decode(str(sig.get("value")), validate=True),
                         message(manifest, fmt))
    except (InvalidSignature, ValueError) as exc:
        raise SigningError(f"the signature does not match {what} (key {kid})") from exc
    return str(kid)


def generate(out: Path) -> tuple[Path, Path, str]:
    """Write a new keypair into out (the private key mode 0600); return both paths and the id."""
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / PRIVATE_FILE, out / PUBLIC_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise SigningError(f"{path} exists already: not overwriting a key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private_path, 0o600)  # whatever the umask
    public_path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path, key_id(private.public_key())


@dataclass(frozen=True)
class Keys:
    """The keys a registry object holds: the one it signs with and the ones it trusts."""

    signing_key: Ed25519PrivateKey | None = None
    trusted: tuple[Ed25519PublicKey, ...] = ()

    def check_can_sign(self, consequence: str) -> None:
        """SigningError when keys are trusted but this object cannot sign with one of them."""
        if not self.trusted:
            return
        if self.signing_key is None:
            raise SigningError("trusted keys are configured but no signing key "
                               f"(CREDIT_RISK_SIGNING_KEY_FILE) here: {consequence}")
        kid = key_id(self.signing_key.public_key())
        if kid not in {key_id(k) for k in self.trusted}:
            raise SigningError(f"the signing key {kid} is not one of the trusted keys: "
                               f"{consequence}")

    def for_records(self) -> tuple[Ed25519PublicKey, ...]:
        """The keys alias records must be signed by: the trusted ones, else (a signer that
        trusts none) its own; () when this object neither trusts nor signs."""
        if self.trusted:
            return self.trusted
        return (self.signing_key.public_key(),) if self.signing_key is not None else ()
