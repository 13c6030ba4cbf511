"""The pieces every settings group is made of: the variable naming and the value parsers."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "CREDIT_RISK_"
# Every candidate (`scorecard`: credit_risk.pipeline.scorecard_train), and those trained by default
MODELS = ("logistic_regression", "random_forest", "xgboost", "scorecard")
DEFAULT_MODELS = MODELS


def env(flat: str) -> str:
    """The environment variable of a setting's flat name."""
    return PREFIX + flat.upper()


def _path_or_url(value: object) -> object:
    """A local folder as a Path; an fsspec URL (s3://bucket/runs) kept as a string (a Path would
    fold its "//")."""
    if isinstance(value, str):
        return value.rstrip("/") if "://" in value else Path(value)
    return value


def _blank_is_none(value: object, *blanks: str) -> object:
    if isinstance(value, str) and value.strip().lower() in ("", *blanks):
        return None
    return value


def _split(value: object) -> object:
    """A comma-separated environment value as a tuple."""
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return value


def _postgres_or_path(value: object, what: str) -> object:
    """A PostgreSQL URL normalised to the psycopg driver; anything else a file path."""
    if isinstance(value, str) and "://" in value:
        scheme, rest = value.split("://", 1)
        if scheme.lower() in ("postgresql", "postgres", "postgresql+psycopg"):
            return "postgresql+psycopg://" + rest
        raise ValueError(f"{what} URL scheme {scheme!r}: a file path or "
                         "postgresql+psycopg://... is supported")
    return None if value is None else Path(str(value))


class Group(BaseSettings):
    """A group of settings; each field reads the environment variable named by its alias."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="forbid", frozen=False)
    title: ClassVar[str] = ""
