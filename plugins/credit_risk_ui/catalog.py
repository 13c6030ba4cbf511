"""What the models pages show, read from the registry as plain data (its public methods only).

The one module of the pages that imports the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from credit_risk.config import Settings
from credit_risk.pipeline.validation_report.model import REPORT_FILE, ValidationReport
from credit_risk.registry import Registry, RegistryError, dataset_of

__all__ = ["DatasetModels", "HistoryEntry", "ModelPage", "ModelsPage", "Registry",
           "RegistryError", "model_page", "models_page", "open_registry", "validation_report"]

ALIASES = ("champion", "previous")
HISTORY_SHOWN = 20


@dataclass(frozen=True)
class VersionRow:
    """One published version in a dataset's table."""

    version: str
    model: Any
    roc_auc: Any
    ece: Any
    status: Any
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class DatasetModels:
    """A dataset's aliases and versions (newest first)."""

    name: str
    champion: str | None
    previous: str | None
    versions: list[VersionRow]


@dataclass(frozen=True)
class HistoryEntry:
    """One alias change."""

    set_at: Any
    dataset: Any
    alias: Any
    version: Any
    by: Any
    reason: Any


@dataclass(frozen=True)
class RejectedRecord:
    """A history file that is not on the alias chain, and why: shown apart, never applied."""

    name: str
    reason: str


@dataclass(frozen=True)
class ModelsPage:
    """The models page: a refused alias record, each dataset, the recent alias history."""

    refused: str | None
    datasets: list[DatasetModels]
    history: list[HistoryEntry]
    rejected: list[RejectedRecord]


@dataclass(frozen=True)
class ModelPage:
    """One version: its dataset and model, and whether it may be promoted."""

    version: str
    dataset: Any
    model: Any
    promotable: bool
    validation_report: bool = False  # the version holds one (versions before it do not)


def open_registry(settings: Settings) -> Registry:
    """The registry the pages read and change."""
    return Registry.from_settings(settings)


def _aliases(registry: Registry) -> tuple[dict[str, dict[str, Any]], str | None]:
    """({dataset: {alias: record}}, why the alias record was refused, or None)."""
    try:
        return registry.aliases(), None
    except RegistryError as exc:
        return {}, str(exc)


def _alias_version(groups: dict[str, dict[str, Any]], dataset: str, alias: str) -> str | None:
    return (groups.get(dataset, {}).get(alias) or {}).get("version")


def _dataset(version: str, manifest: dict[str, Any]) -> str:
    """The version's dataset; a refused name is listed as written, never promotable."""
    try:
        return dataset_of(version, manifest)
    except RegistryError:
        return str(manifest.get("dataset"))


def _row(version: str, manifest: dict[str, Any], aliases: tuple[str, ...]) -> VersionRow:
    metrics = manifest.get("metrics") or {}
    return VersionRow(version, manifest.get("model"), metrics.get("roc_auc"), metrics.get("ece"),
                      manifest.get("status"), aliases)


def _history(registry: Registry) -> tuple[list[HistoryEntry], list[RejectedRecord]]:
    """(the changes on the alias chain, newest first; the history files left off it)."""
    kept = [HistoryEntry(h.get("set_at"), h.get("dataset") or "", h.get("alias"),
                         h.get("version"), h.get("by"), h.get("reason"))
            for h in reversed(registry.history()[-HISTORY_SHOWN:])]
    rejected = [RejectedRecord(r["name"], r["reason"]) for r in registry.rejected_history()]
    return kept, rejected


def models_page(registry: Registry) -> ModelsPage:
    """Every version grouped by dataset, with each dataset's aliases."""
    groups, refused = _aliases(registry)
    rows: dict[str, list[VersionRow]] = {d: [] for d in groups}
    for version, manifest in reversed(registry.listing()):
        dataset = _dataset(version, manifest)
        held = tuple(a for a in ALIASES if _alias_version(groups, dataset, a) == version)
        rows.setdefault(dataset, []).append(_row(version, manifest, held))
    datasets = [DatasetModels(d, _alias_version(groups, d, "champion"),
                              _alias_version(groups, d, "previous"), rows[d])
                for d in sorted(rows)]
    kept, rejected = _history(registry)
    return ModelsPage(refused, datasets, kept, rejected)


def model_page(registry: Registry, version: str) -> ModelPage:
    """One version's page; RegistryError when there is no such version."""
    manifest = registry.manifest(version)
    dataset = str(manifest.get("dataset") or "")
    champion = _alias_version(_aliases(registry)[0], dataset, "champion")
    return ModelPage(version, manifest.get("dataset"), manifest.get("model"),
                     champion != version, REPORT_FILE in (manifest.get("files") or {}))


def validation_report(registry: Registry, version: str) -> ValidationReport:
    """A version's validation report, checksum-verified and parsed; RegistryError when the
    version or the file is missing or altered, ReportError when it is not a report."""
    try:
        data = registry.read_file(version, REPORT_FILE)
    except FileNotFoundError as exc:
        raise RegistryError(f"version {version} has no validation report") from exc
    return ValidationReport.loads(data, f"{version}/{REPORT_FILE}")
