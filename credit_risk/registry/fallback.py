"""Which versions serving may fall back to when the champion cannot be loaded.

A fallback serves a version that was the champion of the dataset at some point of the alias
chain and was not withdrawn since: a rollback withdraws the champion it replaces (after
``promote v2``, ``promote v3``, ``rollback``, v3 is withdrawn, and a corrupt v2 never brings
it back). A withdrawn version becomes eligible again only by being made champion again.
Candidates come newest champion first; the current champion is not one. When none is left,
`no_fallback_reason` says why, for ``/ready``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _champion_changes(history: Iterable[Mapping[str, Any]],
                      dataset: str | None) -> list[Mapping[str, Any]]:
    return [h for h in history if h.get("alias") == "champion"
            and (dataset is None or h.get("dataset") == dataset)]


def eligible(history: Iterable[Mapping[str, Any]], dataset: str | None,
             champion: str | None) -> list[str]:
    """Versions a fallback may serve, newest champion first (see the module docstring);
    `history` is Registry.history(): verified alias changes, oldest first."""
    order: list[str] = []
    for change in _champion_changes(history, dataset):
        replaced = change.get("replaced")
        if change.get("action") == "rollback" and replaced in order:
            order.remove(replaced)  # withdrawn
        version = change["version"]
        if version in order:
            order.remove(version)
        order.append(version)
    return [v for v in reversed(order) if v != champion]


def withdrawn(history: Iterable[Mapping[str, Any]], dataset: str | None) -> list[str]:
    """Versions withdrawn by a rollback and not made champion again, newest first."""
    still = eligible(history := list(history), dataset, None)
    out: list[str] = []
    for change in reversed(_champion_changes(history, dataset)):
        replaced = change.get("replaced")
        if change.get("action") == "rollback" and replaced and replaced not in still \
                and replaced not in out:
            out.append(replaced)
    return out


def no_fallback_reason(history: Iterable[Mapping[str, Any]], dataset: str | None,
                       champion: str | None, refused: Mapping[str, str]) -> str:
    """Why no version can stand in for the champion: `refused` maps each candidate tried to
    why it failed to load."""
    history = list(history)
    parts = [f"{v}: {why}" for v, why in refused.items()]
    gone = withdrawn(history, dataset)
    if gone:
        parts.append(f"withdrawn by a rollback, never served as a fallback: {', '.join(gone)}")
    if not parts:
        parts.append("no earlier champion in the alias history")
    return f"no fallback for champion {champion}: " + "; ".join(parts)
