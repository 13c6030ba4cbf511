"""Batches of the PostgreSQL decision log: the `decision_batches` table (a row per batch, its
rows compressed in `data`; see `credit_risk.records.batches`). Imported only for a
`postgresql+psycopg://` decision log."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from credit_risk.records.batches import Batch, BatchRows, rows_of
from credit_risk.records.postgres import Database

PRUNE_BATCHES = 100  # batches deleted per transaction

metadata = sa.MetaData()
decision_batches = sa.Table(
    "decision_batches", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("input_name", sa.Text),
    sa.Column("input_bytes", sa.BigInteger),
    sa.Column("input_sha256", sa.Text),
    sa.Column("codec", sa.Text, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
_HEAD = [c for c in decision_batches.c if c.name != "data"]  # the record without its rows


def insert(db: Database, rows: BatchRows, batch: Batch) -> Batch:
    """The batch and its rows in one transaction."""
    rows.file.seek(0)
    data = rows.file.read()
    with db.engine().begin() as conn:
        conn.execute(decision_batches.insert(),
                     {**batch.model_dump(exclude={"file"}), "data": data})
    return batch


def heads(db: Database, since: datetime | None, until: datetime | None,
          model_versions: Collection[str] | None) -> list[tuple[int, Batch]]:
    """(id, record) of the batches recorded in [since, until), oldest first; not their rows."""
    t = decision_batches
    query = sa.select(*_HEAD).order_by(t.c.at, t.c.id)
    if since is not None:
        query = query.where(t.c.at >= since)
    if until is not None:
        query = query.where(t.c.at < until)
    if model_versions is not None:
        query = query.where(t.c.model_version.in_(sorted(model_versions)))
    with db.engine().connect() as conn:
        try:
            rows = conn.execute(query).all()
        except sa_exc.ProgrammingError as exc:
            if _no_table(exc):
                return []
            raise
    return [(row.id, Batch.model_validate({k: v for k, v in row._mapping.items() if k != "id"}))
            for row in rows]


def decisions_of(db: Database, batch_id: int, batch: Batch,
                 keys: tuple[str, ...] | None) -> Iterator[dict[str, Any]]:
    """A batch's decisions (`batches.rows_of`: checked against its SHA-256 first)."""
    t = decision_batches
    with db.engine().connect() as conn:
        data = conn.execute(sa.select(t.c.data).where(t.c.id == batch_id)).scalar_one()
    yield from rows_of(batch, io.BytesIO(bytes(data)), db.describe(), keys)


def count(db: Database, since: datetime | None, until: datetime | None) -> int:
    t = decision_batches
    query = sa.select(sa.func.coalesce(sa.func.sum(t.c.rows), 0))
    if since is not None:
        query = query.where(t.c.at >= since)
    if until is not None:
        query = query.where(t.c.at < until)
    with db.engine().connect() as conn:
        try:
            return int(conn.execute(query).scalar_one())
        except sa_exc.ProgrammingError as exc:
            if _no_table(exc):
                return 0
            raise


def prune(db: Database, before: datetime) -> int:
    """Delete the batches recorded before `before`: the number of decisions they held."""
    t = decision_batches
    ids = sa.select(t.c.id).where(t.c.at < before).order_by(t.c.at, t.c.id) \
        .limit(PRUNE_BATCHES).scalar_subquery()
    total = 0
    while True:
        try:
            with db.engine().begin() as conn:
                gone = conn.execute(sa.delete(t).where(t.c.id.in_(ids))
                                    .returning(t.c.rows)).all()
        except sa_exc.ProgrammingError as exc:
            if _no_table(exc):
                return 0
            raise
        total += sum(r.rows for r in gone)
        if len(gone) < PRUNE_BATCHES:
            return total


def _no_table(exc: sa_exc.ProgrammingError) -> bool:
    """A schema not migrated to 0003_decision_batches yet: it holds no batch (reads and
    retention go on; `ok()` says to migrate)."""
    return isinstance(exc.orig, psycopg.errors.UndefinedTable)
