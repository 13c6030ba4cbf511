"""Ingest: read a dataset's source tables and write an immutable snapshot for a run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd

from credit_risk.errors import CreditRiskError
from credit_risk.pipeline.run_paths import SNAPSHOT_FILE
from credit_risk.spec.dataset import SPECS_DIR, DatasetSpec, Table

BUILTIN_DATA = SPECS_DIR.parent / "data"


class IngestError(CreditRiskError, RuntimeError):
    """A source table cannot be read."""


def source_url(table: Table, spec: DatasetSpec, data_dir: Path) -> str:
    """Where a table is read from: builtin:, an absolute path or URL, or data_dir/<spec>/."""
    src = table.source
    if src.startswith("builtin:"):
        return str(BUILTIN_DATA / src.removeprefix("builtin:"))
    if "://" in src or Path(src).is_absolute():
        return src
    return str(data_dir / spec.name / src)


def read_table(table: Table, spec: DatasetSpec, data_dir: Path) -> pd.DataFrame:
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


def missing_sources(spec: DatasetSpec, data_dir: Path) -> list[str]:
    """The source tables of a spec that do not exist (an unreachable store is not "missing")."""
    missing = []
    for table in spec.tables.values():
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


def ingest(spec: DatasetSpec, data_dir: Path, out_dir: Path) -> Path:
    """Snapshot every table of the spec into out_dir as Parquet; return the snapshot manifest.

    Idempotent: a complete snapshot already in out_dir is kept as it is.
    """
    manifest_path = out_dir / SNAPSHOT_FILE
    if manifest_path.exists():
        return manifest_path
    check_sources(spec, data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Any] = {}
    for name, table in spec.tables.items():
        df = read_table(table, spec, data_dir)
        path = out_dir / f"{name}.parquet"
        df.to_parquet(path, index=False)
        tables[name] = {
            "source": source_url(table, spec, data_dir),
            "rows": len(df),
            "columns": list(map(str, df.columns)),
            "fingerprint": frame_fingerprint(df),
            "path": path.name,
        }
    overall = hashlib.sha256("".join(t["fingerprint"] for t in tables.values()).encode())
    manifest = {"dataset": spec.name, "fingerprint": overall.hexdigest(), "tables": tables}
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(manifest_path)  # the manifest last: its presence means the snapshot is whole
    return manifest_path


def load_snapshot(manifest_path: Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    manifest = json.loads(manifest_path.read_text())
    frames = {
        name: pd.read_parquet(manifest_path.parent / t["path"])
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
