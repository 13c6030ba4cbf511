"""Reproducible performance measurements (scripts run from the repository root)."""
