"""The PostgreSQL plumbing of the records (SQLAlchemy 2 + psycopg 3): URLs, the engine and its
pool, the psycopg connections of the group commit, JSON coding, error messages without
credentials, and the Alembic migrations (decisions and outcomes: one chain, under one
advisory lock). Imported only for a `postgresql+psycopg://` setting."""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x63726C6F67  # pg_advisory_xact_lock key of `migrate` ("crlog")
SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")
DB_ERRORS = (psycopg.Error, sa_exc.SQLAlchemyError)

try:
    import orjson

    def dumps(value: Any) -> str:
        return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_NON_STR_KEYS).decode()

    def loads(data: bytes | str) -> Any:
        """JSONB as psycopg hands it over, decoded with orjson (several times faster than the
        json module: reads of a million decisions are mostly this)."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:  # what orjson refuses and json reads (an int > 64 bits)
            return json.loads(data)
except ImportError:  # pragma: no cover - without the serving extra

    def dumps(value: Any) -> str:
        return json.dumps(value, default=str, allow_nan=False)

    def loads(data: bytes | str) -> Any:
        return json.loads(data)


def database_url(url: str | URL) -> URL:
    """A PostgreSQL URL for psycopg 3; ValueError for another database."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ValueError(f"{parsed.drivername} is not supported: postgresql+psycopg:// only")
    return parsed


def why(exc: BaseException) -> str:
    """The database's own message, first line (no SQL, no parameters, no password)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}".rstrip(": ")


def close_quietly(conn: psycopg.Connection[Any] | None) -> None:
    """Close a connection that may already be broken (its error tells nothing more)."""
    if conn is not None:
        try:
            conn.close()
        except psycopg.Error:
            pass


def alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


_head: list[str] = []


def head_revision() -> str:
    """The newest schema revision this code ships."""
    if not _head:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert head is not None
        _head.append(head)
    return _head[0]


class Database:
    """One PostgreSQL database: a lazily made engine (pooled, pre-pinged at checkout so a
    restarted server costs no failed request), plain psycopg connections, migrations."""

    def __init__(self, url: str | URL, *, connect_timeout_s: float = 2.0, pool_size: int = 2,
                 max_overflow: int = 4, pool_timeout_s: float | None = None):
        self.url = database_url(url)
        self.connect_timeout_s = max(1, math.ceil(connect_timeout_s))
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.pool_timeout_s = pool_timeout_s or self.connect_timeout_s
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def connect_args(self) -> dict[str, Any]:
        """Connection timeout and TCP keepalives, unless the URL sets them."""
        query = self.url.query
        return {key: value for key, value in (
            ("connect_timeout", self.connect_timeout_s), ("keepalives", 1),
            ("keepalives_idle", 10), ("keepalives_interval", 5), ("keepalives_count", 3))
            if key not in query}

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = sa.create_engine(
                    self.url, connect_args=self.connect_args(), json_serializer=dumps,
                    json_deserializer=loads, pool_size=self.pool_size,
                    max_overflow=self.max_overflow, pool_timeout=self.pool_timeout_s,
                    pool_pre_ping=True)
            return self._engine

    def connect(self, *, statement_timeout_s: float | None = None) -> psycopg.Connection[Any]:
        """A plain autocommit psycopg connection (no pool), statements bounded by the server."""
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(conninfo, autocommit=True, **self.connect_args())
        if statement_timeout_s is not None:
            conn.execute(f"SET statement_timeout = {max(100, int(statement_timeout_s * 1000))}")
        return conn

    def revision(self) -> str | None:
        """The schema revision of the database (None: not migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine().connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def migrate(self) -> str:
        """Create or upgrade the schema to the shipped head, in one transaction under an
        advisory lock (two callers at once: the second waits, then finds nothing to do)."""
        from alembic import command

        with self.engine().begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        return head_revision()

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's pooled connections are not ours to use or close."""
        self._lock = threading.Lock()
        if self._engine is not None:
            self._engine.dispose(close=False)

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
