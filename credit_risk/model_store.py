"""The serving side's hold on the champion: load, verify, hot-swap, keep the last good one."""

from __future__ import annotations

import logging
import threading
from typing import Any

from credit_risk.registry import Registry, RegistryError
from credit_risk.scoring import Scorer

log = logging.getLogger(__name__)


class ModelStore:
    """Holds the current Scorer; `refresh()` swaps in a new champion after verifying it."""

    def __init__(self, registry: Registry, alias: str = "champion"):
        self.registry = registry
        self.alias = alias
        self._scorer: Scorer | None = None
        self._lock = threading.Lock()
        self.reload_failures = 0
        self.last_error: str | None = None
        self._stop = threading.Event()

    @property
    def scorer(self) -> Scorer | None:
        return self._scorer  # one reference read: requests see the old or the new model, whole

    def refresh(self) -> bool:
        """Load the alias's version if it changed; return True when a new model was swapped in."""
        with self._lock:
            try:
                version = self.registry.alias_version(self.alias)
            except (OSError, ValueError) as exc:
                return self._fail(f"cannot read alias {self.alias!r}: {exc}")
            if version is None or (self._scorer and self._scorer.version == version):
                return False
            try:
                model, manifest = self.registry.load_model(version)
                scorer = Scorer(model, manifest)
            except (RegistryError, OSError, ValueError, KeyError) as exc:
                return self._fail(f"refused version {version}: {exc}")
            self._scorer = scorer
            self.last_error = None
            log.info("serving model %s", version)
            return True

    def _fail(self, message: str) -> bool:
        self.reload_failures += 1
        self.last_error = message
        log.error("%s; still serving %s", message, self._scorer.version if self._scorer else None)
        return False

    def watch(self, interval_s: float) -> threading.Thread:
        """Poll the alias in a daemon thread every interval_s seconds."""
        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.refresh()

        thread = threading.Thread(target=loop, name="model-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict[str, Any]:
        scorer = self._scorer
        if scorer is None:
            return {"loaded": False, "last_error": self.last_error}
        m = scorer.manifest
        return {"loaded": True, "model_version": scorer.version, "dataset": m["dataset"],
                "model": m["model"], "created_at": m["created_at"], "threshold": scorer.threshold,
                "metrics": m["metrics"], "score_scaling": m["score_scaling"],
                "inputs": scorer.fields, "last_error": self.last_error}
