"""The folders and files of a pipeline run, named in one place.

A training run (``<runs>/<run>/``)::

    raw/snapshot.json, raw/<table>.parquet         ingest: the immutable snapshot
    validation/validation.json, gx_results/, ...   validate: the GX result and Data Docs
    split/train.parquet, test.parquet, split.json  prepare: the one split
    candidates/<model>.joblib                      train: one fitted candidate each
    comparison.json, reliability.png               compare: every candidate on the test set

A monitoring run: ``<runs>/monitoring/<run>/drift.json`` and ``drift_report.html``.

Steps still hand each other plain path strings (Airflow passes them through XCom);
`RunPaths.of` finds the run a path belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from credit_risk.config import Settings

SNAPSHOT_FILE = "snapshot.json"  # in the raw folder: what ingest wrote (tables, fingerprints)
MONITORING = "monitoring"  # <runs>/monitoring/<run>/: the drift checks, not training runs


@dataclass(frozen=True)
class RunPaths:
    """The layout of one training run folder."""

    root: Path

    # Top-level entries of a run folder; `of` recognises a path by the one it lies in.
    _DIRS = ("raw", "validation", "split", "candidates")
    _FILES = ("comparison.json", "reliability.png")

    @classmethod
    def for_run(cls, settings: Settings, run_id: str) -> RunPaths:
        return cls(settings.run_dir(run_id))

    @classmethod
    def of(cls, path: str | Path) -> RunPaths:
        """The run a path inside a run folder belongs to (a snapshot, the split folder, a
        candidate, the comparison, the validation result...)."""
        path = Path(path)
        for p in (path, *path.parents):
            if p.name in cls._DIRS or p.name in cls._FILES:
                return cls(p.parent)
        raise ValueError(f"{path} is not inside a run folder")

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def snapshot(self) -> Path:
        return self.raw / SNAPSHOT_FILE

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    @property
    def split(self) -> Path:
        return self.root / "split"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates"

    def candidate(self, model_name: str) -> Path:
        return self.candidates / f"{model_name}.joblib"

    @property
    def comparison(self) -> Path:
        return self.root / "comparison.json"

    @property
    def reliability(self) -> Path:
        return self.root / "reliability.png"


def monitoring_dir(settings: Settings, run_id: str) -> Path:
    """The folder of one monitoring run (named by the run id as it is: Airflow's ids)."""
    return settings.runs_dir / MONITORING / run_id
