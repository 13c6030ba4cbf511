"""`credit-risk predict`'s files, read and written in chunks with pyarrow: CSV and Parquet.

A CSV's cells are read as bytes and written back as they were (a byte that is not UTF-8
included); a model field's cells are decoded as UTF-8, a byte that is not UTF-8 as a lone
surrogate (``surrogateescape``), which validation then refuses with the field's name.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from credit_risk.errors import CreditRiskError

CHUNK_ROWS = 100_000
# Cells that mean "no value" (pandas' defaults).
MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                     "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                     "nan", "null"})
_MISSING = pa.array(sorted(MISSING), pa.string())


class PredictInputError(CreditRiskError, ValueError):
    """The input cannot be scored as a whole (unreadable, columns missing or clashing)."""


def is_parquet(path: str) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def count_rows(path: Path) -> int | None:
    """The number of rows when the file says it cheaply (Parquet's metadata), else None."""
    if not is_parquet(str(path)):
        return None
    import pyarrow.parquet as pq  # only for Parquet: its import costs start-up

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, pa.ArrowException):
        return None  # read_chunks says why


def read_chunks(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pa.RecordBatch]:
    """The input's rows in batches of at most `chunk_rows`, in order."""
    batches = _parquet(path, chunk_rows) if is_parquet(str(path)) else _csv(path, chunk_rows)
    schema = None
    for batch in batches:
        schema = batch.schema
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)
    if schema is None:  # no rows: one empty batch, so that the output has its header
        yield pa.RecordBatch.from_pylist([], schema=_empty_schema(path))


def _empty_schema(path: Path) -> pa.Schema:
    if is_parquet(str(path)):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).schema_arrow
    return pa.schema([(n, pa.binary()) for n in _csv_header(path)])


def _parquet(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
        names = file.schema_arrow.names
        _check_names(path, names)
        yield from file.iter_batches(batch_size=chunk_rows)
    except OSError as exc:
        raise PredictInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except pa.ArrowException as exc:
        raise PredictInputError(f"{path}: not a valid Parquet file: {exc}") from exc


def _csv(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    names = _csv_header(path)
    bad: list[Any] = []

    def invalid(row: Any) -> str:
        bad.append(row)
        return "error"

    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=max(1 << 20, chunk_rows * 200)),
            parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.binary())))
        yield from reader
    except OSError as exc:
        raise PredictInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except pa.ArrowException as exc:
        if bad:
            row = bad[-1]
            raise PredictInputError(
                f"{path}: a row has {row.actual_columns} values for {row.expected_columns} "
                f"columns: {row.text[:80]!r}") from exc
        raise PredictInputError(f"{path}: not a valid CSV file: {exc}") from exc


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            header = next(csv.reader(fh), None)
    except OSError as exc:
        raise PredictInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except csv.Error as exc:
        raise PredictInputError(f"{path}, line 1: not a valid CSV file: {exc}") from exc
    if not header:
        raise PredictInputError(f"{path}: no header line")
    _check_names(path, header)
    return header


def _check_names(path: Path, names: Sequence[str]) -> None:
    doubled = sorted({c for c in names if names.count(c) > 1})
    if doubled:
        raise PredictInputError(f"{path}: columns named twice: {', '.join(doubled)}")


def texts(column: pa.Array) -> list[str | None]:
    """A column's cells as text (a byte that is not UTF-8 as a lone surrogate; None: null)."""
    if pa.types.is_binary(column.type):
        try:
            return column.cast(pa.string()).to_pylist()
        except pa.ArrowInvalid:  # not UTF-8
            return [None if b is None else b.decode("utf-8", "surrogateescape")
                    for b in column.to_pylist()]
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.to_pylist()
    return [None if v is None else str(v) for v in column.to_pylist()]


def distinct_texts(column: pa.Array) -> tuple[list[str], np.ndarray] | None:
    """A text column as (its distinct cells, each cell's index in them; a null: the index
    one past the end), or None when it is not UTF-8 text (then `texts` reads it)."""
    if not (pa.types.is_binary(column.type) or pa.types.is_string(column.type)):
        return None
    try:
        encoded = pc.dictionary_encode(column.cast(pa.string()))
    except pa.ArrowInvalid:  # not UTF-8
        return None
    values = encoded.dictionary.to_pylist()
    codes = pc.fill_null(encoded.indices, len(values)).to_numpy(zero_copy_only=False)
    return values, codes


def numbers(column: pa.Array) -> np.ndarray | None:
    """A column of text as float64 numbers (NaN: missing), or None when a cell is not plain
    ASCII decimal notation (then each cell is read on its own, and validation says why)."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if not pa.types.is_binary(column.type) and not pa.types.is_string(column.type):
        return None
    try:
        text = column.cast(pa.string())
        trimmed = pc.utf8_trim_whitespace(text)
        # a missing cell (pandas' words, a blank) is null; the rest must be decimal notation
        missing = pc.or_(pc.fill_null(pc.is_in(text, value_set=_MISSING), True),
                         pc.equal(trimmed, ""))
        cells = pc.if_else(missing, None, trimmed)
        # Arrow's parser reads ASCII decimal notation, and `inf`, `nan`, `1e999`: those are
        # left to the cell-by-cell path (validation says why), as is anything it refuses.
        x = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return None
    with np.errstate(invalid="ignore"):
        if np.isinf(x).any() or np.count_nonzero(np.isnan(x)) != cells.null_count:
            return None
    return x


def plain_ids(column: pa.Array) -> bool:
    """Whether every cell of an id column is printable ASCII of at most 100 characters (or
    empty, or null): such ids need no check one by one (no control or bidi mark, NFC)."""
    if not (pa.types.is_binary(column.type) or pa.types.is_string(column.type)):
        return False
    try:
        text = column.cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8
        return False
    return bool(pc.all(pc.fill_null(pc.match_substring_regex(text, r"^[ -~]{0,100}$"),
                                    True)).as_py())


class Writer:
    """The output, a CSV or Parquet file (or CSV on a stream), written one chunk at a time."""

    def __init__(self, target: str | IO[bytes], parquet: bool = False):
        self.target = target
        self._writer: Any = None
        self.parquet = parquet

    def write(self, batch: pa.RecordBatch, results: dict[str, list[Any]]) -> None:
        """The input's columns as read, then the result columns."""
        try:
            # CSV: the bytes back as read (cells need not be UTF-8); Parquet: text
            columns = [(c.cast(pa.string()) if self.parquet else c.view(pa.string()))
                       if pa.types.is_binary(c.type) else c for c in batch.columns]
            columns += [pa.array(v, _TYPES.get(k, pa.string())) for k, v in results.items()]
            table = pa.table(columns, names=[*batch.schema.names, *results])
            if self._writer is None and self.parquet:
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.target, table.schema)
            elif self._writer is None:
                self._writer = pacsv.CSVWriter(
                    self.target, table.schema,
                    write_options=pacsv.WriteOptions(quoting_style="needed"))
            self._writer.write_table(table)
        except pa.ArrowInvalid as exc:
            raise PredictInputError(f"cannot write the output: {exc}") from exc

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


_TYPES = {"probability_of_default": pa.float64(), "credit_score": pa.int64()}
