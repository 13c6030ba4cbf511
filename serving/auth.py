"""Optional API-key authentication: `X-API-Key: KEY` or `Authorization: Bearer KEY`.

Keys come from the environment (CREDIT_RISK_API_KEYS, comma-separated); with none set the
API is open. Keys are compared in constant time. The web form's policy is separate
(CREDIT_RISK_FORM_AUTH): open, a login with one of the same keys, or disabled.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from flask import Request

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/openapi.json", "/docs"})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyChecker:
    """Knows the valid keys (as SHA-256 digests) and checks a request's key in constant time."""

    def __init__(self, keys: Sequence[str]):
        self._digests = [_digest(k) for k in keys if k]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def valid(self, key: str | None) -> bool:
        if not key:
            return False
        given = _digest(key)
        ok = False
        for d in self._digests:  # no early exit: the time does not say which key matched
            ok |= hmac.compare_digest(given, d)
        return ok

    @staticmethod
    def _token(digest: bytes) -> str:
        return hashlib.sha256(b"credit-risk-form-session:" + digest).hexdigest()

    def session_token(self, key: str) -> str:
        """What a form session remembers: a hash of the key, never the key."""
        return self._token(_digest(key))

    def valid_session(self, token: str | None) -> bool:
        """A session token of a key that is still valid (rotating keys ends old sessions)."""
        if not token:
            return False
        ok = False
        for d in self._digests:
            ok |= hmac.compare_digest(token, self._token(d))
        return ok

    def secret(self) -> bytes:
        """A session-signing secret every worker derives alike; it changes with the keys."""
        return hashlib.sha256(b"credit-risk-secret:" + b"".join(sorted(self._digests))).digest()


def request_key(request: Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
