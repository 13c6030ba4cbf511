"""The `Registry`: one object for the pipeline, serving, the CLI and the pages, composed of
the storage backend (storage.Storage), the versions (versions.Versions) and the alias chain
(chain.AliasChain). It holds no state of its own beyond its settings and does no I/O when
built; every method reads the registry as it is at the time of the call.

Layout under the registry URL (a local folder, or ``s3://...``)::

    models/<version>/manifest.json   written last; lists the SHA-256 and size of every file
    models/<version>/...             the model files, reports, model card
    history/<seq>.json               the alias chain: one record per alias change
    aliases/state.json               a copy of the newest alias record

An alias is only ever taken for its own dataset: promote and rollback check the dataset of the
version's verified manifest, and serving checks it again (registry.champion).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from credit_risk.registry import signing
from credit_risk.registry.chain import AliasChain, Aliases, ChainView, Plan, promotion, resolve
from credit_risk.registry.errors import RegistryError, SignatureError
from credit_risk.registry.records import Manifest, valid_dataset
from credit_risk.registry.storage import Storage
from credit_risk.registry.versions import Versions, check_can_sign, new_version_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from credit_risk.config import Settings

log = logging.getLogger(__name__)
_warned: set[str] = set()


def dataset_of(version: str, manifest: Mapping[str, Any]) -> str:
    """The dataset of a version's manifest; RegistryError when it names none or no name."""
    return Manifest.parse(version, manifest).dataset_name()


def builtin_spec_dataset(spec: str) -> str | None:
    """The dataset of a built-in spec named by its name (a path to a YAML file: None)."""
    if "/" in spec or "\\" in spec or "." in spec or not valid_dataset(spec):
        return None
    return spec


class Registry:
    """Model versions and their aliases on an fsspec URL (see the module docstring)."""

    def __init__(self, url: str, signing_key: Ed25519PrivateKey | None = None,
                 trusted_keys: Iterable[Ed25519PublicKey] = (), dataset: str | None = None,
                 prefer: str | None = None):
        """`dataset`: the dataset whose aliases reads and rollbacks act on when they name none
        (CREDIT_RISK_DATASET); without it, the registry's only dataset. `prefer`: for reads
        only, the dataset to read when the registry holds several and `dataset` is unset."""
        if dataset is not None and not valid_dataset(dataset):
            raise RegistryError(f"not a dataset name: {dataset!r}")
        self.url = str(url)
        self.keys = signing.Keys(signing_key, tuple(trusted_keys))
        self.dataset = dataset
        self.prefer = prefer if valid_dataset(prefer) else None
        self.storage = Storage(self.url)
        self.models = Versions(self.storage, self.keys)
        self.chain = AliasChain(self.storage, self.keys)

    @classmethod
    def from_settings(cls, settings: Settings, prefer: str | None = None) -> Registry:
        """The registry of the settings, with their keys, reading the aliases of
        CREDIT_RISK_DATASET (unset: the only dataset; of several, `prefer`, by default the
        dataset of a built-in spec named by CREDIT_RISK_DATASET_SPEC)."""
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
    def signing_key(self) -> Ed25519PrivateKey | None:
        return self.keys.signing_key

    @property
    def trusted_keys(self) -> tuple[Ed25519PublicKey, ...]:
        return self.keys.trusted

    # -- versions ------------------------------------------------------------------------------
    new_version_id = staticmethod(new_version_id)

    def publish(self, files: dict[str, bytes], manifest: dict[str, Any],
                version: str | None = None) -> str:
        """Store a new immutable version (signed when a signing key is set); return its id."""
        return self.models.publish(files, manifest, version)

    def listing(self) -> list[tuple[str, dict[str, Any]]]:
        """(version, manifest) of every usable version, oldest first (see Versions.listing)."""
        return self.models.listing()

    def versions(self) -> list[str]:
        return [v for v, _ in self.listing()]

    def manifest(self, version: str) -> dict[str, Any]:
        """A version's manifest, its shape checked, NOT verified (see verify)."""
        return self.models.manifest(version)

    def check_signature(self, version: str, manifest: dict[str, Any]) -> str | None:
        return self.models.check_signature(version, manifest)

    def verify(self, version: str) -> dict[str, Any]:
        """The manifest, after checking its signature (with trusted keys) and every file it
        lists; other files in the version's folder are logged, never served."""
        return self.models.verify(version)[0]

    def read_file(self, version: str, name: str,
                  manifest: dict[str, Any] | None = None) -> bytes:
        return self.models.read_file(version, name, manifest)

    def find(self, key: str, value: Any) -> str | None:
        """The newest listed version whose manifest has `key == value` (e.g. its run)."""
        return next((v for v, m in reversed(self.listing()) if m.get(key) == value), None)

    # -- aliases -------------------------------------------------------------------------------
    def _verified_dataset(self, version: str, dataset: str | None = None) -> str:
        """Verify a version; return its dataset, which must be `dataset` when one is given."""
        own = dataset_of(version, self.verify(version))
        if dataset is not None and own != dataset:
            raise RegistryError(f"version {version} is a model of dataset {own!r}, not of "
                                f"{dataset!r}: refused")
        return own

    def _change(self, action: str, dataset: str | None,
                plan: Any, by: str | None) -> Any:
        check_can_sign(self.keys, "promote and rollback need the signing key where they run, "
                       "since serving refuses an alias record not signed by a trusted key")

        def choose(view: ChainView) -> str:
            target = resolve(None, view.datasets(), self.dataset, None, self.url, read=False)
            if target is None:
                raise RegistryError(f"no previous champion to roll back to: registry "
                                    f"{self.url} has no aliases yet")
            return target

        return self.chain.change(action, dataset, choose, plan, by)

    def check_can_change_aliases(self) -> None:
        """SignatureError when a promote or rollback made here would be refused: before work
        that ends in one (publishing an approved model), so that nothing is written."""
        check_can_sign(self.keys, "promote and rollback need the signing key where they run")
        self.chain.check_can_extend()

    def set_alias(self, name: str, version: str, reason: str, by: str | None = None) -> None:
        """Point one alias of the version's dataset at it (checked first)."""
        check_can_sign(self.keys, "promote and rollback need the signing key where they run")
        dataset = self._verified_dataset(version)
        self._change("set", dataset, lambda *_: ({name: version}, {name: reason}, None), by)

    def promote(self, version: str, reason: str, by: str | None = None,
                dataset: str | None = None) -> None:
        """Make a verified version the champion of its dataset (`dataset`, when given, must be
        the version's); the old champion becomes `previous`, in one record."""
        check_can_sign(self.keys, "promote and rollback need the signing key where they run")
        own = self._verified_dataset(version, dataset)
        self._change("promote", own, lambda current, _: promotion(current, version, reason), by)

    def rollback(self, reason: str, by: str | None = None, dataset: str | None = None) -> str:
        """Swap champion and previous of a dataset (default: the registry's `dataset`, else
        its only one) after verifying previous; return the version now serving."""
        verified: set[str] = set()

        def plan(current: Aliases, target: str) -> Plan:
            if "previous" not in current:
                raise RegistryError(f"no previous champion to roll back to for dataset "
                                    f"{target!r}")
            previous = current["previous"].version
            if previous not in verified:
                self._verified_dataset(previous, target)
                verified.add(previous)
            targets, reasons, _ = promotion(current, previous, f"rollback: {reason}")
            return targets, reasons, previous

        result: str = self._change("rollback", dataset, plan, by)
        return result

    def aliases(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every dataset's aliases: {dataset: {alias: {"version", "set_at", "by", "reason",
        "replaced"}}}."""
        return {d: {n: e.model_dump() for n, e in a.items()}
                for d, a in self.chain.current().datasets().items() if a}

    def resolve_dataset(self, dataset: str | None = None) -> str | None:
        """The dataset `alias(name, dataset)` reads."""
        return resolve(dataset, self.chain.current().datasets(), self.dataset, self.prefer,
                       self.url)

    def alias(self, name: str, dataset: str | None = None) -> dict[str, Any] | None:
        """{"alias", "dataset", "version", "set_at", "by", "reason", "replaced"}, or None when
        unset. Several datasets and none named or preferred: RegistryError."""
        groups = self.chain.current().datasets()
        resolved = resolve(dataset, groups, self.dataset, self.prefer, self.url)
        entry = groups.get(resolved, {}).get(name) if resolved is not None else None
        return {**entry.model_dump(), "alias": name, "dataset": resolved} if entry else None

    def alias_version(self, name: str, dataset: str | None = None) -> str | None:
        record = self.alias(name, dataset)
        return record["version"] if record else None

    def history(self) -> list[dict[str, Any]]:
        """Every alias change on the chain, oldest first: {"alias", "version", "set_at", "by",
        "reason", "replaced", "dataset", "action", "change", "seq", "verified"} ("verified":
        with trusted keys, whether one signed the record, False for a record signed by a key
        retired since, which the trusted records after it vouch for; None without keys).
        Records not on the chain are in `rejected_history`."""
        view = self.chain.read()
        keys = bool(self.keys.for_records())
        return [{**c.model_dump(), "set_at": r.at, "by": r.by, "dataset": r.dataset,
                 "action": r.action, "change": r.change, "seq": r.seq,
                 "verified": view.trusted(r) if keys else None}
                for r in view.records for c in r.changes]

    def rejected_history(self) -> list[dict[str, str]]:
        """The files of history/ that are not on the chain: {"name", "reason"}."""
        return [{"name": r.name, "reason": r.reason} for r in self.chain.read().rejected]
