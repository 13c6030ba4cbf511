"""The registry's errors: one base class (RegistryError) and what a caller may tell apart."""

from __future__ import annotations

from credit_risk.errors import CreditRiskError


class RegistryError(CreditRiskError, RuntimeError):
    """A version or alias is missing or inconsistent."""


class ChecksumError(RegistryError):
    """A file of a version does not match the SHA-256 and size in its manifest."""


class SignatureError(RegistryError):
    """A record is unsigned, or not signed by a trusted key, while trusted keys are set."""


class AliasStateError(RegistryError):
    """The alias chain cannot be used: unreadable, or older than one already seen."""
