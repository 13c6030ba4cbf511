"""The alias chain: who is champion of each dataset, and every change that made it so.

Each alias change is one record (records.AliasRecord) created once under
``history/<seq>.json`` and never replaced; ``aliases/state.json`` is then replaced by a copy
of it, a shortcut to the end of the chain. A record holds every dataset's aliases after the
change, its sequence number `seq` and `parent`, the SHA-256 of the record it follows (None
for the first). With a signing key it is signed (format ``credit-risk-aliases-v1``) over all
of that, sequence number and parent included.

Reading the history (`read`): every file of ``history/`` is parsed and, with keys, its
signature checked. A record is *valid* when it parses, its `seq` is the number in its file
name and (with keys) a trusted key signed it. The chain is made of valid records only, in
order of `seq`: the first valid record without a parent, then each valid record whose parent
is the SHA-256 of the chain's last record. Everything else is *rejected* and listed apart
with the reason: unreadable or malformed files (``{}``), unsigned or forged records, a signed
record copied to another slot (its `seq` is not its slot), one that does not follow the chain
(an older signed state replayed, a fork). A rejected record never stops a reader or the key
holder.

Reading the aliases (`current`) and writing start from state.json when it is byte for byte
the record of its slot, and read only the records after it (one small read per poll);
otherwise they read the whole chain.

Writing (`change`): the next record takes the next FREE slot, one past the highest number in
``history/`` whatever holds the slots below, and is created only if that slot is still free
(O_EXCL locally, under a flock; ``If-None-Match: *`` on S3). A writer that loses the slot
reads the chain again: if the winner's record is valid it builds on it, if not (a squatted
slot) the next free slot is past it. Crash safety: a change is the one atomic create of its
record; state.json, written after it, may lag: the records after it are read.

Without keys (the embedded default) every record that parses is valid: whoever can write the
registry decides, as with any unsigned store. Aliases are per dataset: a registry holds
several portfolios, each with its own ``champion`` and ``previous``.
"""

from __future__ import annotations

import getpass
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from credit_risk.registry import signing
from credit_risk.registry.errors import AliasStateError, RegistryError, SignatureError
from credit_risk.registry.records import (
    REPROMOTE,
    AliasEntry,
    AliasRecord,
    Change,
    valid_dataset,
)
from credit_risk.registry.storage import Conflict, Storage

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LEGACY = (STATE_FILE, "champion.json", "previous.json")  # without history: earlier layouts
MAX_RECORD_BYTES = 1 << 20
UNTRUSTED = "not signed by a trusted key"
ATTEMPTS = 50  # an alias change against concurrent writers
SLOT = re.compile(r"^(\d{10,18})\.json$")
Aliases = dict[str, AliasEntry]
Plan = tuple[dict[str, str], dict[str, str], Any]  # alias targets, their reasons, a result


@dataclass(frozen=True)
class Rejected:
    """A file of ``history/`` that is not on the chain, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class ChainView:
    """The chain as read: its records oldest first, the rejected files, the highest slot."""

    records: tuple[AliasRecord, ...]
    rejected: tuple[Rejected, ...]
    last_slot: int
    vouched: frozenset[str] = frozenset()  # digests on the chain no trusted key signed
    foreign: int = 0  # records off the chain signed by a key that is not trusted

    def trusted(self, record: AliasRecord) -> bool:
        """Whether a trusted key signed this record of the chain (else a trusted record after
        it vouches for it through the parent hashes: signed by a retired key)."""
        return record.digest() not in self.vouched

    @property
    def head(self) -> AliasRecord | None:
        return self.records[-1] if self.records else None

    def datasets(self) -> dict[str, Aliases]:
        head = self.head
        return {d: dict(a) for d, a in head.datasets.items()} if head else {}


def promotion(current: Aliases, version: str, reason: str) -> Plan:
    """The alias targets that make `version` the champion (the old one becomes previous)."""
    old = current["champion"].version if "champion" in current else None
    if old == version:
        return {}, {}, version
    targets: dict[str, str] = {}
    reasons: dict[str, str] = {}
    if old:
        targets["previous"], reasons["previous"] = old, f"replaced by {version}: {reason}"
    targets["champion"], reasons["champion"] = version, reason
    return targets, reasons, version


def resolve(dataset: str | None, groups: dict[str, Aliases], default: str | None,
            prefer: str | None, url: str, read: bool = True) -> str | None:
    """The dataset a read (or, `read=False`, a rollback) acts on: the one named, else
    `default` (CREDIT_RISK_DATASET), else the only dataset with aliases, else (reads only)
    `prefer`. None when there are no aliases; RegistryError when it is ambiguous."""
    if dataset is not None:
        if not valid_dataset(dataset):
            raise RegistryError(f"not a dataset name: {str(dataset)[:120]!r}")
        return dataset
    if default is not None:
        return default
    named = sorted(d for d, a in groups.items() if a)
    if len(named) == 1:
        return named[0]
    if read and prefer is not None and (prefer in named or not named):
        return prefer
    if not named:
        return None
    raise RegistryError(f"registry {url} holds the models of several datasets "
                        f"({', '.join(repr(d) for d in named)}): name one (--dataset, or "
                        "CREDIT_RISK_DATASET)")


class AliasChain:
    """Reads and extends the alias chain of one registry (see the module docstring)."""

    def __init__(self, storage: Storage, keys: signing.Keys):
        self.storage = storage
        self.keys = keys
        self._cache: dict[str, tuple[Any, tuple[AliasRecord, bool] | str]] = {}  # name -> parse
        self._warned: set[str] = set()
        self.seen_seq = 0  # the highest head this object has read: never accept an older one
        self._state: tuple[bytes, AliasRecord] | None = None  # state.json as last verified
        self._untrusted_reason: dict[str, str] = {}  # digest -> why its signature failed

    def _load(self, name: str, slot: int) -> tuple[AliasRecord, bool] | str:
        """The record in a slot and whether a trusted key signed it (always, without keys),
        or why it is rejected."""
        path = self.storage.path("history", name)
        try:
            raw = self.storage.read_bounded(path, MAX_RECORD_BYTES)
            record = AliasRecord.parse(_json(raw, name), name)
        except FileNotFoundError:
            return "removed while read"
        except (RegistryError, OSError) as exc:
            return str(exc)
        if record.seq != slot:
            return f"its sequence number {record.seq} is not that of its slot ({slot}): a " \
                   "record copied from another place of the chain"
        trusted = self.keys.for_records()
        if trusted:
            try:
                signing.verify(record.body(), trusted, signing.ALIASES_FORMAT)
            except signing.SigningError as exc:
                self._untrusted_reason[record.digest()] = f"{UNTRUSTED}: {exc}"
                return record, False
        return record, True

    def read(self) -> ChainView:
        """The chain of valid records and the rejected files (see the module docstring)."""
        parsed: list[tuple[AliasRecord, bool]] = []
        rejected: list[Rejected] = []
        last = 0
        entries = self.storage.entries(self.storage.path("history"))
        for name, stamp in entries:
            match = SLOT.match(name)
            if match is None:
                if not name.startswith("."):
                    rejected.append(Rejected(name, "not a history record name"))
                continue
            slot = int(match.group(1))
            last = max(last, slot)
            cached = self._cache.get(name)
            if cached is None or cached[0] != stamp or stamp == (None, None):
                cached = (stamp, self._load(name, slot))
                self._cache[name] = cached
            if isinstance(cached[1], str):
                rejected.append(Rejected(name, cached[1]))
            else:
                parsed.append(cached[1])
        chain, vouched = _chain_of(parsed)
        on_chain = {r.digest() for r in chain}
        foreign = sum(1 for r, ok in parsed if not ok and r.signature is not None
                      and r.digest() not in on_chain)
        for record, _ in parsed:
            if record.digest() not in on_chain:
                why = self._untrusted_reason.get(record.digest()) or (
                    "does not follow the chain (its parent is not the record before it): a fork "
                    "or an older record replayed")
                rejected.append(Rejected(f"{record.seq:010d}.json", why))
        for item in rejected:
            if item.name not in self._warned and len(self._warned) < 10_000:
                self._warned.add(item.name)
                log.warning("registry %s: history record %s rejected: %s", self.storage.url,
                            item.name, item.reason)
        return ChainView(tuple(chain), tuple(rejected), last, frozenset(vouched), foreign)

    def _from_state(self) -> ChainView | None:
        """The end of the chain read cheaply: the state.json copy, if it is the record of its
        slot, then the valid records that follow it; None when the copy cannot be used."""
        try:
            raw = self.storage.read_bounded(self.storage.path("aliases", STATE_FILE),
                                            MAX_RECORD_BYTES)
            slots = {int(m.group(1)): n for n in self.storage.names(
                self.storage.path("history")) if (m := SLOT.match(n))}
            if self._state is None or self._state[0] != raw:
                state = AliasRecord.parse(_json(raw, STATE_FILE), STATE_FILE)
                own = self._load(slots[state.seq], state.seq) if state.seq in slots else None
                if not isinstance(own, tuple) or not own[1] or own[0].digest() != state.digest():
                    return None
                self._state = (raw, own[0])
        except (FileNotFoundError, RegistryError, OSError):
            return None
        if self._state[1].seq not in slots:  # its record is gone: read what is there
            return None
        chain = [self._state[1]]
        for slot in sorted(n for n in slots if n > chain[0].seq):
            loaded = self._load(slots[slot], slot)
            if isinstance(loaded, tuple) and loaded[1] and loaded[0].parent == chain[-1].digest():
                chain.append(loaded[0])
        return ChainView(tuple(chain), (), max(slots))

    def current(self) -> ChainView:
        """The chain's end for a reader (from the state.json copy when it is usable, else the
        whole chain): AliasStateError when its head is older than one this object
        has read before (newer records removed), or when it is empty and the
        aliases of an earlier release are there (never taken for "no champion")."""
        view = self._from_state() or self.read()
        head = view.head
        if head is None and (any(REPROMOTE in r.reason for r in view.rejected) or (
                view.last_slot == 0 and any(self.storage.exists(
                    self.storage.path("aliases", n)) for n in LEGACY))):
            raise AliasStateError(f"registry {self.storage.url}: its aliases were written by "
                                  f"an earlier release: {REPROMOTE}")
        seq = head.seq if head else 0
        if seq < self.seen_seq:
            raise AliasStateError(f"registry {self.storage.url}: the alias chain ends at "
                                  f"sequence number {seq}, older than {self.seen_seq} seen "
                                  "before (newer records removed?): refused")
        self.seen_seq = seq
        return view

    def check_can_extend(self, view: ChainView | None = None) -> None:
        """SignatureError when this signer would start the aliases afresh over records that
        another key signed: a signer that trusts no key but its own (a worker given the wrong
        key). Unsigned records do not count: signing is being turned on. With trusted keys
        configured, starting afresh over untrusted records is allowed: it is how a leaked key
        is retired."""
        if self.keys.signing_key is None or self.keys.trusted:
            return
        view = view or self.read()
        if view.head is None and view.foreign:
            raise SignatureError(
                f"registry {self.storage.url}: its alias records are signed by another key than "
                "this signing key, and no trusted keys are configured here: refusing to start "
                "the aliases afresh (set CREDIT_RISK_TRUSTED_KEYS, or use the right key)")

    def change(self, action: str, dataset: str | None, choose: Callable[[ChainView], str],
               plan: Callable[[Aliases, str], Plan], by: str | None) -> Any:
        """Move aliases of one dataset in one record. `choose(view)` names the dataset when
        `dataset` is None; `plan(its aliases, dataset)` returns (targets, reasons, result) and
        runs again when another writer got the slot first."""
        with self.storage.lock():
            for folder in ("history", "aliases"):
                self.storage.clean_leftovers(self.storage.path(folder))
            for attempt in range(ATTEMPTS):
                view = self._from_state() or self.read()
                if view.head is None:
                    self.check_can_extend(view)
                target = dataset if dataset is not None else choose(view)
                groups = view.datasets()
                current = groups.get(target, {})
                targets, reasons, result = plan(current, target)
                changed = {n: v for n, v in targets.items()
                           if n not in current or current[n].version != v}
                if not changed:
                    return result
                record = self._record(view, action, target, current, changed, reasons, by)
                state = self._state_tag()
                try:
                    self.storage.create(self.storage.path("history", f"{record.seq:010d}.json"),
                                        record.encode())
                except Conflict:
                    log.info("registry %s: slot %s taken by another writer; reading the chain "
                             "again", self.storage.url, record.seq)
                    time.sleep(random.uniform(0.005, 0.02) * min(attempt + 1, 10))
                    continue
                self._write_state(record, state)
                self.seen_seq = max(self.seen_seq, record.seq)
                return result
        raise RegistryError(f"registry {self.storage.url}: alias change not made: other "
                            f"writers changed the aliases {ATTEMPTS} times in a row; try again")

    def _record(self, view: ChainView, action: str, target: str, current: Aliases,
                changed: dict[str, str], reasons: dict[str, str], by: str | None) -> AliasRecord:
        now, who = datetime.now(UTC).isoformat(), by or getpass.getuser()
        aliases = dict(current)
        changes = []
        for name, version in changed.items():
            replaced = current[name].version if name in current else None
            aliases[name] = AliasEntry(version=version, set_at=now, by=who,
                                       reason=reasons[name], replaced=replaced)
            changes.append(Change(alias=name, version=version, replaced=replaced,
                                  reason=reasons[name]))
        datasets = {**view.datasets(), target: aliases}
        head = view.head
        record = AliasRecord(format=3, seq=view.last_slot + 1,
                             parent=head.digest() if head else None, change=uuid.uuid4().hex,
                             action=action, at=now, by=who, dataset=target, changes=changes,
                             datasets=datasets)
        if self.keys.signing_key is None:
            return record
        signed = signing.sign(record.body(), self.keys.signing_key, signing.ALIASES_FORMAT)
        return AliasRecord.model_validate(signed)

    def _state_tag(self) -> tuple[bool, str | None]:
        """(exists, ETag) of state.json on an object store, for a conditional replace."""
        if self.storage.local:
            return True, None
        try:
            info = self.storage.fs.info(self.storage.path("aliases", STATE_FILE))
        except FileNotFoundError:
            return False, None
        return True, info.get("ETag")

    def _write_state(self, record: AliasRecord, tag: tuple[bool, str | None]) -> None:
        """state.json: a copy of the newest record; skipped when another writer moved it on."""
        try:
            self.storage.replace_if(self.storage.path("aliases", STATE_FILE), record.encode(),
                                    etag=tag[1], existed=tag[0])
        except Conflict:
            log.info("registry %s: state.json moved on by another writer", self.storage.url)


def _chain_of(parsed: list[tuple[AliasRecord, bool]]) -> tuple[list[AliasRecord], set[str]]:
    """The chain, oldest first, and the digests on it that no trusted key signed.

    In order of `seq`, a trusted record extends the chain when its parent is the chain's
    last record (or, for the first, when it has none). An untrusted record waits in a pool:
    it joins the chain only when a trusted record follows it through the parent hashes (the
    trusted record commits to its exact bytes: records signed by a key retired since stay on
    the chain). Anything else (a fork, an older record replayed, an untrusted record nothing
    trusted follows) is left off."""
    chain: list[AliasRecord] = []
    pool: dict[str, AliasRecord] = {}
    vouched: set[str] = set()
    for record, trusted in sorted(parsed, key=lambda p: p[0].seq):
        if not trusted:
            pool[record.digest()] = record
            continue
        head = chain[-1].digest() if chain else None
        path: list[AliasRecord] = []
        parent = record.parent
        while parent != head and parent in pool and len(path) <= len(pool):
            path.append(pool[parent])
            parent = pool[parent].parent
        if parent != head:
            continue
        for ancestor in reversed(path):
            chain.append(ancestor)
            vouched.add(ancestor.digest())
            del pool[ancestor.digest()]
        chain.append(record)
    return chain, vouched


def _json(data: bytes, name: str) -> Any:
    import json

    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"{name}: not valid JSON: {exc}") from exc
