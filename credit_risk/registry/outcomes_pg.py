"""Observed outcomes in PostgreSQL (SQLAlchemy 2 + psycopg 3): the `outcomes` table of the
decision log's Alembic migrations (`migrate()`, or `credit-risk decisions migrate`). Imported
only for a `postgresql+psycopg://` outcomes URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

from credit_risk.registry.outcomes import (
    CHUNK_ROWS,
    Observation,
    OutcomesError,
    OutcomeStore,
    parse_observed_at,
)

MIGRATION_LOCK = 0x63726C6F67  # the decision log's migration lock: one migrator at a time

metadata = sa.MetaData()
outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("application_id", sa.Text, nullable=False),
    sa.Column("defaulted", sa.Boolean, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("loaded_at", sa.DateTime(timezone=True)),
)

# One statement per chunk: the rows as one array per column; a key stored already (or twice in
# the chunk) is skipped, and the row count says how many were new.
_INSERT = sa.text(
    "INSERT INTO outcomes (application_id, defaulted, observed_at) SELECT * FROM unnest("
    "CAST(:application_id AS text[]), CAST(:defaulted AS bool[]), "
    "CAST(:observed_at AS timestamptz[])) "
    "ON CONFLICT ON CONSTRAINT uq_outcomes_observation DO NOTHING")


class PostgresOutcomes(OutcomeStore):
    """Outcomes in the `outcomes` table (in the connection's search_path)."""

    def __init__(self, url: str | URL, chunk_rows: int = CHUNK_ROWS):
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.chunk_rows = chunk_rows
        self._engine_: Engine | None = None

    def _engine(self) -> Engine:
        if self._engine_ is None:
            args = {} if "connect_timeout" in self.url.query else {"connect_timeout": 5}
            self._engine_ = sa.create_engine(self.url, connect_args=args, pool_size=1,
                                             max_overflow=2)
        return self._engine_

    def describe(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _error(self, what: str, exc: BaseException) -> OutcomesError:
        inner = getattr(exc, "orig", None) or exc
        first = (str(inner).strip().splitlines() or [""])[0]
        hint = " (run `credit-risk outcomes migrate`)" if "outcomes\" does not exist" in first \
            else ""
        return OutcomesError(f"outcomes {self.describe()}: cannot {what}: "
                             f"{type(inner).__name__}: {first}{hint}")

    def load(self, observations: Iterable[Observation]) -> int:
        new = 0
        chunk: list[Observation] = []
        for obs in observations:
            chunk.append(obs)
            if len(chunk) >= self.chunk_rows:
                new += self._insert(chunk)
                chunk = []
        if chunk:
            new += self._insert(chunk)
        return new

    def _insert(self, chunk: list[Observation]) -> int:
        params = {"application_id": [o["application_id"] for o in chunk],
                  "defaulted": [bool(o["defaulted"]) for o in chunk],
                  "observed_at": [parse_observed_at(o["observed_at"]) for o in chunk]}
        try:
            with self._engine().begin() as conn:
                return int(conn.execute(_INSERT, params).rowcount)
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("store", exc) from exc

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Observation]]:
        """Keyset pages over (observed_at, id): one short query per chunk."""
        t = outcomes
        where = []
        if since is not None:
            where.append(t.c.observed_at >= parse_observed_at(since))
        if until is not None:
            where.append(t.c.observed_at < parse_observed_at(until))
        last: tuple[datetime, int] | None = None
        while True:
            query = sa.select(t.c.id, t.c.application_id, t.c.defaulted, t.c.observed_at) \
                .where(*where)
            if last is not None:
                query = query.where(sa.tuple_(t.c.observed_at, t.c.id) > sa.tuple_(
                    sa.literal(last[0], sa.DateTime(timezone=True)), sa.literal(last[1])))
            query = query.order_by(t.c.observed_at, t.c.id).limit(chunk_rows)
            try:
                with self._engine().connect() as conn:
                    rows = conn.execute(query).all()
            except sa_exc.SQLAlchemyError as exc:
                raise self._error("read", exc) from exc
            if not rows:
                return
            yield [{"application_id": r.application_id, "defaulted": r.defaulted,
                    "observed_at": r.observed_at.astimezone(UTC).isoformat()} for r in rows]
            if len(rows) < chunk_rows:
                return
            last = (rows[-1].observed_at, rows[-1].id)

    def count(self) -> int:
        try:
            with self._engine().connect() as conn:
                return int(conn.execute(sa.select(sa.func.count()).select_from(outcomes))
                           .scalar_one())
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("count", exc) from exc

    def migrate(self) -> str:
        """Create or upgrade the schema (decisions and outcomes: one chain of migrations)."""
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        from credit_risk.registry.decisions_pg import MIGRATIONS

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        try:
            with self._engine().begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": MIGRATION_LOCK})
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except sa_exc.SQLAlchemyError as exc:
            raise self._error("migrate", exc) from exc
        head = ScriptDirectory.from_config(config).get_current_head()
        assert head is not None
        return head

    def close(self) -> None:
        if self._engine_ is not None:
            self._engine_.dispose()
            self._engine_ = None
