"""Observed outcomes in PostgreSQL: the `outcomes` table of the decision log's Alembic
migrations (`migrate()`, or `credit-risk outcomes migrate`). Imported only for a
`postgresql+psycopg://` outcomes URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from credit_risk.records.outcomes import (
    CHUNK_ROWS,
    Observation,
    OutcomesError,
    OutcomeStore,
    checked,
    parse_observed_at,
)
from credit_risk.records.postgres import DB_ERRORS, Database, why

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
    """Outcomes in the `outcomes` table (in the connection's search_path); connects on first
    use."""

    def __init__(self, url: str | URL, chunk_rows: int = CHUNK_ROWS):
        try:
            self.db = Database(url, connect_timeout_s=5, pool_size=1, max_overflow=2)
        except ValueError as exc:
            raise OutcomesError(f"outcomes URL: {exc}") from exc
        self.url = self.db.url
        self.chunk_rows = chunk_rows

    def describe(self) -> str:
        return self.db.describe()

    def _error(self, what: str, exc: BaseException) -> OutcomesError:
        first = why(exc)
        hint = " (run `credit-risk outcomes migrate`)" if "outcomes\" does not exist" in first \
            else ""
        return OutcomesError(f"outcomes {self.describe()}: cannot {what}: {first}{hint}")

    def load(self, observations: Iterable[Observation | Mapping[str, Any]]) -> int:
        new = 0
        chunk: list[Observation] = []
        for obs in checked(observations):
            chunk.append(obs)
            if len(chunk) >= self.chunk_rows:
                new += self._insert(chunk)
                chunk = []
        if chunk:
            new += self._insert(chunk)
        return new

    def _insert(self, chunk: list[Observation]) -> int:
        params = {"application_id": [o.application_id for o in chunk],
                  "defaulted": [o.defaulted for o in chunk],
                  "observed_at": [o.observed_at for o in chunk]}
        try:
            with self.db.engine().begin() as conn:
                return int(conn.execute(_INSERT, params).rowcount)
        except DB_ERRORS as exc:
            raise self._error("store", exc) from exc

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
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
                with self.db.engine().connect() as conn:
                    rows = conn.execute(query).all()
            except DB_ERRORS as exc:
                raise self._error("read", exc) from exc
            if not rows:
                return
            yield [Observation(application_id=r.application_id, defaulted=r.defaulted,
                               observed_at=r.observed_at.astimezone(UTC)).record()
                   for r in rows]
            if len(rows) < chunk_rows:
                return
            last = (rows[-1].observed_at, rows[-1].id)

    def count(self) -> int:
        try:
            with self.db.engine().connect() as conn:
                return int(conn.execute(sa.select(sa.func.count()).select_from(outcomes))
                           .scalar_one())
        except DB_ERRORS as exc:
            raise self._error("count", exc) from exc

    def migrate(self) -> str:
        """Create or upgrade the schema (decisions and outcomes: one chain of migrations)."""
        try:
            return self.db.migrate()
        except DB_ERRORS as exc:
            raise self._error("migrate", exc) from exc

    def close(self) -> None:
        self.db.dispose()
