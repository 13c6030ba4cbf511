"""The serving side's hold on the champion: load, verify, hot-swap, keep the last good one.

A new champion (or a rollback) is loaded in the background: every file is checked
against its SHA-256, the model is compiled and must score a typical application;
only then is the reference swapped, in one assignment, so a request sees the old
model or the new one, whole. A version that fails any step is refused, logged and
counted, and the last good model keeps serving.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from credit_risk.registry import Registry
from credit_risk.scoring import Scorer

log = logging.getLogger(__name__)


@dataclass
class StoreEvents:
    """Optional callbacks (for metrics): a model was swapped in, a reload failed."""

    on_swap: Callable[[Scorer | None, Scorer], None] | None = None
    on_failure: Callable[[str], None] | None = None


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
                 prepare: Callable[[Scorer], None] | None = None):
        self.registry = registry
        self.alias = alias
        self.events = events or StoreEvents()
        self.prepare = prepare
        self._scorer: Scorer | None = None
        self._lock = threading.Lock()
        self.reload_failures = 0
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self._refused: tuple[str, Any] | None = None  # (version, alias set_at) refused for good
        self._stop = threading.Event()

    @property
    def scorer(self) -> Scorer | None:
        return self._scorer  # one reference read: requests see the old or the new model, whole

    def refresh(self) -> bool:
        """Load the alias's version if it changed; return True when a new model was swapped in."""
        with self._lock:
            try:
                record = self.registry.alias(self.alias)
            except Exception as exc:  # any storage error: retry on the next poll
                return self._fail(f"cannot read alias {self.alias!r}: {exc}")
            if not record:
                return False
            version = record["version"]
            if self._scorer is not None and self._scorer.version == version:
                return False
            if self._refused == (version, record.get("set_at")):
                return False  # this exact promotion was refused already; wait for a new one
            try:
                scorer = Scorer.load(self.registry, version)
                if self.prepare is not None:
                    self.prepare(scorer)
                warm_up(scorer)
            except OSError as exc:
                return self._fail(f"cannot load version {version}: {exc}")
            except Exception as exc:  # a bad artifact, whatever the way it fails
                self._refused = (version, record.get("set_at"))
                return self._fail(f"refused version {version}: {type(exc).__name__}: {exc}")
            old, self._scorer = self._scorer, scorer
            self.loaded_at = time.time()
            self.last_error = None
            log.info("serving model %s (was %s)", version, old.version if old else None)
            if self.events.on_swap is not None:
                self.events.on_swap(old, scorer)
            return True

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
        status = {"reload_failures": self.reload_failures, "last_error": self.last_error}
        if scorer is None:
            return {"loaded": False, **status}
        m = scorer.manifest
        return {"loaded": True, "model_version": scorer.version, "dataset": m["dataset"],
                "model": m["model"], "created_at": m["created_at"], "loaded_at": self.loaded_at,
                "alias": self.alias, "threshold": scorer.threshold,
                "metrics": m["metrics"], "score_scaling": m["score_scaling"],
                "inputs": scorer.fields, **status}
