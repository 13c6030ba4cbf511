"""Ingest: read a dataset's source tables and write an immutable snapshot for a run.

A table is a file (CSV or Parquet: local, builtin: or an fsspec URL) or a SQL query against a
SQLAlchemy URL, fetched in chunks through a server-side cursor (SQLAlchemy is imported only
when a spec has a SQL source). Either way the snapshot is the same Parquet file with the same
content fingerprint for the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.run_paths import (
    SNAPSHOT_FILE,
    exists,
    local_or_url,
    makedirs,
    read_text,
    write_text,
)
from credit_risk.pipeline.run_paths import join as join_path
from credit_risk.spec.dataset import SPECS_DIR, DatasetSpec, SqlSource, Table

BUILTIN_DATA = SPECS_DIR.parent / "data"


class IngestError(CreditRiskError, RuntimeError):
    """A source table cannot be read."""


def source_url(table: Table, spec: DatasetSpec, data_dir: Path) -> str:
    """Where a table is read from: builtin:, an absolute path or URL, or data_dir/<spec>/;
    for a SQL source, its description without credentials (sql:$VAR or sql:<url>)."""
    src = table.source
    if isinstance(src, SqlSource):
        return src.describe()
    if src.startswith("builtin:"):
        return str(BUILTIN_DATA / src.removeprefix("builtin:"))
    if "://" in src or Path(src).is_absolute():
        return src
    return str(data_dir / spec.name / src)


def read_table(table: Table, spec: DatasetSpec, data_dir: Path,
               name: str | None = None) -> pd.DataFrame:
    if isinstance(table.source, SqlSource):
        name = name or _name_of(table, spec)
        df = read_sql_table(table.source, name)
        check_columns(spec, name, df)
        return df
    url = source_url(table, spec, data_dir)
    try:
        with fsspec.open(url, "rb") as fh:
            if table.file_format() == "csv":
                return pd.read_csv(fh, low_memory=False)
            return pd.read_parquet(fh)
    except FileNotFoundError as exc:
        raise IngestError(f"source table not found: {url}") from exc
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as exc:
        raise IngestError(f"cannot read {url}: {exc}") from exc


def read_tables(spec: DatasetSpec, data_dir: Path) -> dict[str, pd.DataFrame]:
    """The spec's source tables from DATA_DIR/<dataset>/ or, failing that, from data_dir."""
    first = next(iter(spec.tables.values()))
    if (isinstance(first.source, str) and not Path(source_url(first, spec, data_dir)).exists()
            and (data_dir / first.source).exists()):
        tables = {n: t.model_copy(update={"source": str((data_dir / t.source).resolve())})
                  if isinstance(t.source, str) else t for n, t in spec.tables.items()}
        spec = spec.model_copy(update={"tables": tables})
    return {name: read_table(table, spec, data_dir) for name, table in spec.tables.items()}


def _name_of(table: Table, spec: DatasetSpec) -> str:
    return next((n for n, t in spec.tables.items() if t is table), "?")


def sql_url(source: SqlSource, table: str) -> str:
    """The SQLAlchemy URL of a SQL source (from its environment variable when it names one)."""
    if source.url_env is None:
        assert source.url is not None  # the spec validates exactly one of url / url_env
        return source.url
    url = os.environ.get(source.url_env, "").strip()
    if not url:
        raise IngestError(f"table {table}: the environment variable {source.url_env} "
                          "(the SQL source's url_env) is not set")
    return url


def read_sql_table(source: SqlSource, table: str) -> pd.DataFrame:
    """The rows of a SQL source, fetched `chunksize` at a time; errors name the table and
    the database without its password."""
    try:
        import sqlalchemy as sa
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
    except ImportError as exc:
        raise IngestError(f"table {table}: a SQL source needs SQLAlchemy (and a driver such "
                          "as psycopg): install the `postgres` extra") from exc
    raw = sql_url(source, table)
    try:
        url = sa.make_url(raw)
    except ArgumentError:  # its message quotes the URL, password and all
        raise IngestError(f"table {table}: {source.describe()} is not a SQLAlchemy URL "
                          "(dialect+driver://user:password@host:port/database)") from None
    where = url.render_as_string(hide_password=True)
    try:
        engine = sa.create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise IngestError(f"table {table}: cannot use the database {where}: "
                          f"{_scrub(exc, url.password)}") from None
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(stream_results=True, max_row_buffer=source.chunksize)
            chunks = list(pd.read_sql(sa.text(source.sql), conn, chunksize=source.chunksize))
    except SQLAlchemyError as exc:
        raise IngestError(f"table {table}: the query failed on {where}: "
                          f"{_scrub(exc, url.password)}") from None
    finally:
        engine.dispose()
    if not chunks:
        raise IngestError(f"table {table}: the query returned no result set")
    return _combine(chunks)


def _scrub(exc: BaseException, password: str | None) -> str:
    """The first line of a database error (the driver's own words), never the password."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    return message.replace(password, "***") if password else message


def _combine(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """One frame of the chunks, typed as if read at once: a column typed differently in some
    chunk (e.g. all NULL there) is inferred over all of its values, as a CSV reader would."""
    if len(chunks) == 1:
        return chunks[0]
    mixed = [c for c in chunks[0].columns if len({str(ch[c].dtype) for ch in chunks}) > 1]
    if mixed:
        chunks = [ch.astype(dict.fromkeys(mixed, object)) for ch in chunks]
    df = pd.concat(chunks, ignore_index=True)
    return df.infer_objects() if mixed else df


def expected_columns(spec: DatasetSpec, name: str) -> list[str]:
    """The columns the spec reads from a table: its key, join keys and the columns placed
    in it (`table: <name>`)."""
    table = spec.tables[name]
    keys = [j.key for j in spec.joins if name in (j.table, spec.base)]
    placed = [c for c, col in spec.columns.items() if col.table == name]
    return list(dict.fromkeys([*([table.key] if table.key else []), *keys, *placed]))


def check_columns(spec: DatasetSpec, name: str, df: pd.DataFrame) -> None:
    """IngestError naming the table and every column of the spec its rows lack."""
    missing = [c for c in expected_columns(spec, name) if c not in df.columns]
    if missing:
        raise IngestError(f"table {name}: the query returns no column {', '.join(missing)} "
                          f"(it returns {', '.join(map(str, df.columns)) or 'no columns'})")


def missing_sources(spec: DatasetSpec, data_dir: Path) -> list[str]:
    """The source files of a spec that do not exist (an unreachable store is not "missing";
    SQL sources are checked when read)."""
    missing = []
    for table in spec.tables.values():
        if isinstance(table.source, SqlSource):
            continue
        url = source_url(table, spec, data_dir)
        try:
            fs, path = fsspec.core.url_to_fs(url)
            exists = fs.exists(path)
        except (ImportError, ValueError, OSError):
            continue  # read_table says why it cannot be read
        if not exists:
            missing.append(url)
    return missing


def check_sources(spec: DatasetSpec, data_dir: Path) -> None:
    """Raise IngestError naming every missing source file of the spec (nothing is generated)."""
    missing = missing_sources(spec, data_dir)
    if missing:
        hint = (f"; write the synthetic tables with `credit-risk generate-data --spec {spec.name}`"
                if spec.generator else "")
        raise IngestError(f"dataset {spec.name}: source table not found: "
                          f"{', '.join(missing)}{hint}")


def frame_fingerprint(df: pd.DataFrame) -> str:
    """SHA-256 of a frame's columns, dtypes and values (independent of the file format)."""
    h = hashlib.sha256()
    h.update(json.dumps([[c, str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def ingest(spec: DatasetSpec, data_dir: Path, out_dir: Path | str) -> Path | str:
    """Snapshot every table of the spec into out_dir as Parquet; return the snapshot manifest.
    out_dir is a local folder or an object store URL (see pipeline.run_paths).

    Idempotent: a complete snapshot already in out_dir is kept as it is.
    """
    manifest_path = join_path(out_dir, SNAPSHOT_FILE)
    if exists(manifest_path):
        return manifest_path
    check_sources(spec, data_dir)
    makedirs(out_dir)
    tables: dict[str, Any] = {}
    for name, table in spec.tables.items():
        df = read_table(table, spec, data_dir, name)
        path = join_path(out_dir, f"{name}.parquet")
        df.to_parquet(path, index=False)
        tables[name] = {
            "source": source_url(table, spec, data_dir),
            "rows": len(df),
            "columns": list(map(str, df.columns)),
            "fingerprint": frame_fingerprint(df),
            "path": f"{name}.parquet",
        }
    overall = hashlib.sha256("".join(t["fingerprint"] for t in tables.values()).encode())
    manifest = {"dataset": spec.name, "fingerprint": overall.hexdigest(), "tables": tables}
    # The manifest last: its presence means the snapshot is whole (a rename here, one PUT on
    # an object store).
    if isinstance(manifest_path, Path):
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(manifest_path)
    else:
        write_text(manifest_path, json.dumps(manifest, indent=2))
    return manifest_path


def load_snapshot(manifest_path: Path | str) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    manifest_path = local_or_url(manifest_path)
    manifest = json.loads(read_text(manifest_path))
    folder = manifest_path.parent if isinstance(manifest_path, Path) \
        else manifest_path.rsplit("/", 1)[0]
    frames = {
        name: pd.read_parquet(join_path(folder, t["path"]))
        for name, t in manifest["tables"].items()
    }
    return manifest, frames


def assemble(spec: DatasetSpec, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Join the tables onto the base table: one row per application."""
    df = frames[spec.base]
    for join in spec.joins:
        right = frames[join.table]
        df = df.merge(right, on=join.key, how="left", suffixes=("", f"__{join.table}"))
    return df
