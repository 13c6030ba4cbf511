"""The serving side's hold on the champion: load, verify, hot-swap, keep the last good one.

A new champion (or a rollback) is loaded in the background: every file is checked
against its SHA-256, the model is compiled and must score a typical application;
only then is the reference swapped, in one assignment, so a request sees the old
model or the new one, whole. A version that fails any step is refused, logged and
counted, and the last good model keeps serving.

A process that starts while the champion cannot be loaded (a corrupt file, a bad
signature) serves a *fallback*, reported by `summary()`: the newest version that loads and
verifies among those the fallback policy allows (registry.fallback: a former champion never
withdrawn by a rollback since). When none is left, nothing serves and `summary()` says why.
The champion is retried with a bounded exponential backoff, and at once when the alias or the
champion's files change, so repairing the files (or promoting another version) ends the
fallback without a restart. When the alias chain itself cannot be read, a running process
keeps its model and a starting one does not guess.

A registry may hold several datasets, each with its own champion: a store serves ONE dataset,
the one it is given (CREDIT_RISK_DATASET), else the registry's only one, else the configured
spec's (see `Registry.alias`); the first model it serves pins the dataset for the process. A
version of another dataset, whatever alias or history record names it, is refused.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from credit_risk.errors import CreditRiskError
from credit_risk.registry import fallback
from credit_risk.registry.errors import RegistryError
from credit_risk.registry.registry import Registry, dataset_of
from credit_risk.scoring.scorer import Scorer

if TYPE_CHECKING:
    from credit_risk.config import Settings

log = logging.getLogger(__name__)


def spec_dataset(settings: Settings) -> str | None:
    """The dataset of the configured spec (CREDIT_RISK_DATASET_SPEC); None if it cannot be read."""
    from credit_risk.spec.dataset import load_spec

    try:
        return load_spec(settings.data.spec).name
    except (CreditRiskError, OSError) as exc:
        log.info("dataset spec %s not read (%s): serving the registry's only dataset",
                 settings.data.spec, exc)
        return None


def registry_for(settings: Settings) -> Registry:
    """The registry of the settings, reading the champion of CREDIT_RISK_DATASET, else of its
    only dataset, else of the configured spec's dataset."""
    return Registry.from_settings(settings, prefer=spec_dataset(settings))


def check_dataset(scorer: Scorer, dataset: str | None) -> None:
    """ValueError when a version is a model of another dataset than the one served."""
    if dataset is None:
        return
    try:
        own = dataset_of(scorer.version, scorer.manifest)
    except RegistryError as exc:
        raise ValueError(str(exc)) from exc
    if own != dataset:
        raise ValueError(f"version {scorer.version} is a model of dataset {own!r}, not of "
                         f"{dataset!r} served here: refused")


def load_champion(registry: Registry, version: str | None = None,
                  dataset: str | None = None) -> Scorer:
    """The Scorer of `version`, by default of the champion of `dataset` (see Registry.alias),
    every file verified; the champion must be a model of its dataset."""
    if version is None:
        record = registry.alias("champion", dataset)
        if record is None:
            which = dataset or registry.resolve_dataset(dataset)
            raise RegistryError(f"no champion model{f' of dataset {which!r}' if which else ''}"
                                f" in {registry.url}: train one first")
        version, dataset = record["version"], record["dataset"]
    scorer = Scorer.load(registry, version)
    try:
        check_dataset(scorer, dataset)
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc
    return scorer


@dataclass
class StoreEvents:
    """Optional callbacks (for metrics): a model was swapped in, a reload failed, the
    process started or stopped serving a version other than the champion."""

    on_swap: Callable[[Scorer | None, Scorer], None] | None = None
    on_failure: Callable[[str], None] | None = None
    on_fallback: Callable[[bool], None] | None = None


@dataclass
class _Retry:
    """A champion that failed to load: when to try it again, and what would make it worth it."""

    key: tuple[str, Any]  # (version, alias set_at)
    fingerprint: Any
    delay_s: float
    due: float


def warm_up(scorer: Scorer) -> None:
    """Score a typical application; raise if the model cannot give a PD in (0, 1)."""
    typical = {f["name"]: f.get("default") for f in scorer.fields}
    result = scorer.score_records([typical])[0]
    pd_ = result["probability_of_default"]
    if not (isinstance(pd_, float) and math.isfinite(pd_) and 0.0 <= pd_ <= 1.0):
        raise ValueError(f"the model gives PD {pd_!r} for a typical application")


class ModelStore:
    """Holds the current Scorer; `refresh()` swaps in a new champion after verifying it."""

    def __init__(self, registry: Registry, alias: str = "champion",
                 events: StoreEvents | None = None,
                 prepare: Callable[[Scorer], None] | None = None,
                 retry_s: float = 5.0, max_retry_s: float = 300.0,
                 dataset: str | None = None):
        self.registry = registry
        self.alias = alias
        # The dataset served: given, else the registry's default (Registry.alias), pinned by
        # the first model served.
        self.dataset = dataset
        self.events = events or StoreEvents()
        self.prepare = prepare
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._scorer: Scorer | None = None
        self._lock = threading.Lock()
        self.reload_failures = 0
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self.champion: str | None = None  # the alias's version at the last look
        self.fallback_reason: str | None = None  # why the served version is not the champion
        self._retry: _Retry | None = None
        self._fallback_reported = False
        self._stop = threading.Event()

    @property
    def scorer(self) -> Scorer | None:
        return self._scorer  # one reference read: requests see the old or the new model, whole

    @property
    def fallback(self) -> bool:
        """Serving a version other than the champion (the champion could not be loaded), or
        serving a fallback while the alias itself could not be read since the start."""
        scorer = self._scorer
        if scorer is None:
            return False
        if self.champion is None:
            return self.fallback_reason is not None
        return scorer.version != self.champion

    def refresh(self) -> bool:
        """Load the alias's version if it changed; return True when a new model was swapped in."""
        with self._lock:
            swapped = self._refresh()
            if self.fallback != self._fallback_reported:
                self._fallback_reported = self.fallback
                if self.events.on_fallback is not None:
                    self.events.on_fallback(self.fallback)
            return swapped

    def _refresh(self) -> bool:
        """One look at the alias (under the lock)."""
        try:
            record = self.registry.alias(self.alias, self.dataset)
        except Exception as exc:  # storage, a refused alias record: retry on the next poll
            return self._fail(f"cannot read alias {self.alias!r}: {type(exc).__name__}: {exc}")
        if not record:
            return False
        version, dataset = record["version"], record.get("dataset")
        self.champion = version
        if self._scorer is not None and self._scorer.version == version:
            self._retry = None
            return False
        key = (version, record.get("set_at"))
        retry = self._retry
        fingerprint = self._fingerprint(version) if retry and retry.key == key else None
        if retry is not None and retry.key == key and time.monotonic() < retry.due \
                and fingerprint == retry.fingerprint:
            return False  # tried already: wait for the backoff, a new alias or new files
        try:
            scorer = self._load(version, dataset)
        except Exception as exc:  # a bad artifact or storage, whatever the way it fails
            kind = "cannot load" if isinstance(exc, OSError) else "refused"
            self._schedule_retry(key, retry)
            failed = self._fail(f"{kind} version {version}: {type(exc).__name__}: {exc}")
            if self._scorer is None:
                self._fall_back(version, self.last_error or "", dataset)
            return failed
        self._retry = None
        self._pin(dataset)
        self._swap(scorer)
        return True

    def _pin(self, dataset: str | None) -> None:
        if self.dataset is None and dataset is not None:
            log.info("serving dataset %r (set CREDIT_RISK_DATASET to choose)", dataset)
            self.dataset = dataset

    def _load(self, version: str, dataset: str | None) -> Scorer:
        scorer = Scorer.load(self.registry, version)  # verifies every file (and signature)
        check_dataset(scorer, dataset)
        if self.prepare is not None:
            self.prepare(scorer)
        warm_up(scorer)
        return scorer

    def _swap(self, scorer: Scorer, fallback_reason: str | None = None) -> None:
        old, self._scorer = self._scorer, scorer
        self.loaded_at = time.time()
        self.fallback_reason = fallback_reason
        if fallback_reason is None:
            self.last_error = None
        log.info("serving model %s (was %s)%s", scorer.version, old.version if old else None,
                 f"; FALLBACK, champion {self.champion}: {fallback_reason}"
                 if fallback_reason else "")
        if self.events.on_swap is not None:
            self.events.on_swap(old, scorer)

    def _fall_back(self, champion: str, reason: str, dataset: str | None) -> None:
        """Nothing serves yet: the newest version the fallback policy allows that loads and
        verifies and is a model of `dataset`; when none does, `last_error` says why."""
        try:
            history = self.registry.history()
        except Exception as exc:
            self.last_error = f"{reason}; no fallback: the alias history cannot be read: {exc}"
            log.error("%s", self.last_error)
            return
        refused: dict[str, str] = {}
        for version in fallback.eligible(history, dataset, champion):
            try:
                scorer = self._load(version, dataset)
            except Exception as exc:
                refused[version] = f"{type(exc).__name__}: {exc}"
                log.error("fallback candidate %s refused: %s", version, refused[version])
                continue
            self._pin(dataset)
            self._swap(scorer, fallback_reason=reason)
            return
        self.last_error = f"{reason}; " + fallback.no_fallback_reason(
            history, dataset, champion, refused)
        log.error("not serving: %s", self.last_error)

    def _schedule_retry(self, key: tuple[str, Any], previous: _Retry | None) -> None:
        delay = self.retry_s if previous is None or previous.key != key \
            else min(previous.delay_s * 2, self.max_retry_s)
        self._retry = _Retry(key, self._fingerprint(key[0]), delay, time.monotonic() + delay)

    def _fingerprint(self, version: str) -> Any:
        """The version's files' names and stamps (cheap: no reads); None if unknown."""
        return self.registry.models.fingerprint(version)

    def _fail(self, message: str) -> bool:
        self.reload_failures += 1
        self.last_error = message
        log.error("%s; still serving %s", message, self._scorer.version if self._scorer else None)
        if self.events.on_failure is not None:
            self.events.on_failure(message)
        return False

    def watch(self, interval_s: float) -> threading.Thread:
        """Poll the alias in a daemon thread every interval_s seconds."""
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception:  # the watcher must outlive any one failure
                    log.exception("model watcher")

        thread = threading.Thread(target=loop, name="model-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict[str, Any]:
        scorer = self._scorer
        retry = self._retry
        status: dict[str, Any] = {
            "dataset": self.dataset if self.dataset is not None or scorer is None
            else scorer.manifest.get("dataset"),
            "reload_failures": self.reload_failures, "last_error": self.last_error,
            "champion": self.champion, "fallback": self.fallback,
            "fallback_reason": (self.fallback_reason or self.last_error) if self.fallback
            else None,
            "champion_retry_in_s": round(max(retry.due - time.monotonic(), 0.0), 1)
            if retry else None}
        if scorer is None:
            return {"loaded": False, **status}
        m = scorer.manifest
        return {"loaded": True, "model_version": scorer.version,
                "model": m["model"], "created_at": m["created_at"], "loaded_at": self.loaded_at,
                "alias": self.alias, "threshold": scorer.threshold,
                "metrics": m["metrics"], "score_scaling": m["score_scaling"],
                "master_scale": scorer.plan.master_scale.to_plan()["grades"],
                "inputs": scorer.fields, **status}
