"""Provenance recorded in every model manifest: code and library versions."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

LIBRARIES = ("credit-risk", "numpy", "pandas", "scikit-learn", "imbalanced-learn", "xgboost-cpu",
             "joblib", "optbinning")


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> str:
    """The git commit of the code, or the package version outside a checkout."""
    try:
        sha = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=Path(__file__).parent,
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return sha or "unknown"
    except (OSError, subprocess.SubprocessError):
        try:
            return metadata.version("credit-risk")
        except metadata.PackageNotFoundError:
            return "unknown"
