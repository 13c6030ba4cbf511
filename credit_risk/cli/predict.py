"""`credit-risk predict`: score a file of applications (CSV or Parquet) with a published model.

The serving slice only (config, errors, spec, scoring, registry, records; pyarrow, no pandas),
so it runs in an install of the serving extra. The input is read, scored and written in chunks
(`--chunk-rows`), so memory stays flat however long the file; progress goes to stderr
(`credit_risk.cli.progress`: a bar on a terminal, plain lines in logs). Every input column is
kept as it was read and the result columns are appended: `probability_of_default`, `risk`,
`credit_score`, `rating`, `grade` (on the model's master scale), `reasons`, `warnings`,
`model_version`, and `error` (which field is bad and why) for a row that fails validation,
which gets no PD. The spec's cleaning rules
(`replace:`, `missing_values:`) apply as in training. The output is written to a temporary
file beside it and renamed when complete; the rows not scored are also listed, by row number
(1: the first row after the header) and reason, in `OUTPUT.errors.csv`.

Decisions are recorded in the decision log only with `--log` (or CREDIT_RISK_PREDICT_LOG): a
what-if run leaves no trace beyond its output. A logged run is ONE batch record (run id, model
version, time, rows scored and failed, the input's name, size and SHA-256) plus its decisions,
compressed (`credit_risk.records.batches`), recorded before the output is put in place: when
the log cannot take it, the command fails (1) and writes no output. The application id (the
column named by the dataset's base table key, e.g. `loan_id`), when the input has it, is recorded
with each decision as `inputs.application_id`; it is not a model input, and is checked as the
API checks it.

Exit codes: 0 every row scored (or none to score), 3 some rows not scored, 4 no row scored,
1 the input, the model or the log failed (nothing is written), 2 a usage error.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from credit_risk.cli.predict_io import (
    CHUNK_ROWS,
    MISSING,
    PredictInputError,
    Writer,
    count_rows,
    distinct_texts,
    is_parquet,
    numbers,
    plain_ids,
    read_chunks,
    texts,
)
from credit_risk.cli.progress import progress
from credit_risk.config import Settings
from credit_risk.registry.champion import load_champion, registry_for
from credit_risk.registry.registry import Registry
from credit_risk.scoring.columns import RESULT_COLUMNS, score_columns
from credit_risk.scoring.decide import DecisionLog
from credit_risk.scoring.request import application_id_error, value_from_text
from credit_risk.scoring.scorer import Scorer
from credit_risk.spec.fields import shown

if TYPE_CHECKING:  # imported with --log only
    from credit_risk.records.batches import BatchRows
    from credit_risk.records.decisions import DecisionLog as RecordsLog

__all__ = ["EXIT_NONE", "EXIT_PARTIAL", "RESULT_COLUMNS", "PredictInputError", "cmd_predict"]

EXIT_PARTIAL = 3  # some rows not scored
EXIT_NONE = 4  # rows to score, none scored
MAX_REPORTED = 20  # bad rows listed on stderr; the errors file has every one


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    scorer = load_scorer(settings, args.version, getattr(args, "dataset", None))
    if scorer.plan.booster is not None:  # a batch job: the booster on every core
        scorer.plan.booster.set_param({"nthread": os.cpu_count() or 1})
    started = datetime.now(UTC)
    request_id = f"cli-{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    logged = None
    if getattr(args, "log", False) or settings.decisions.predict_log:
        logged = Logged.open(settings, request_id, started)
    try:
        return _predict(args, scorer, logged, request_id)
    finally:
        if logged is not None:
            logged.close()


def _predict(args: argparse.Namespace, scorer: Scorer, logged: Logged | None,
             request_id: str) -> int:
    chunk_rows = getattr(args, "chunk_rows", None) or CHUNK_ROWS
    out = None if args.output == "-" else Path(args.output)
    errors_path = None if out is None else out.with_name(out.name + ".errors.csv")
    if errors_path is not None:
        errors_path.unlink(missing_ok=True)  # a former run's, which would mislead
    part = None if out is None else out.with_name(f".{out.name}.part-{os.getpid()}")
    sys.stdout.flush()
    writer = Writer(sys.stdout.buffer if part is None else str(part),
                    parquet=out is not None and is_parquet(str(out)))
    batch = Batch(scorer, None if logged is None else logged.rows, request_id)
    chunks = read_chunks(Path(args.input), chunk_rows)
    first = next(chunks)  # the input's faults as a whole before any progress or output
    check_header(scorer, first.schema.names)
    try:
        with progress("predict", count_rows(Path(args.input)), "rows") as shown:
            for chunk in itertools.chain([first], chunks):
                writer.write(chunk, batch.score(chunk))
                shown.advance(chunk.num_rows)
        writer.close()
        if logged is not None:  # the audit record first: no output without it
            logged.record(batch.failed, Path(args.input), scorer.version)
    except BaseException:
        writer.close()
        if part is not None:
            part.unlink(missing_ok=True)
        raise
    if part is not None and out is not None:
        part.replace(out)
    report_bad_rows(batch.errors, errors_path)
    if out is not None:
        print(f"scored {batch.rows - batch.failed} of {batch.rows} rows with {scorer.version} "
              f"-> {out}", file=sys.stderr)
    if batch.failed == 0:
        return 0
    return EXIT_NONE if batch.failed == batch.rows else EXIT_PARTIAL


class Logged:
    """A logged run: its decisions collected as one batch (`records.batches.BatchRows`),
    recorded in the decision log at the end (`record`)."""

    def __init__(self, log: RecordsLog, rows: BatchRows):
        self.log, self.rows = log, rows

    @classmethod
    def open(cls, settings: Settings, request_id: str, started: datetime) -> Logged:
        from credit_risk.records.backends import open_decision_log
        from credit_risk.records.batches import BatchRows

        log = open_decision_log(settings)
        if log is None:
            raise PredictInputError("--log: no decision log is configured "
                                    "(CREDIT_RISK_DECISION_LOG is none)")
        return cls(log, BatchRows(request_id, started))

    def record(self, failed: int, input_path: Path, model_version: str) -> None:
        """The batch record and its rows into the log (DecisionLogError when it fails)."""
        batch = self.rows.finish(datetime.now(UTC), failed=failed, input_path=input_path,
                                 model_version=model_version)
        self.log.write_batch(self.rows, batch)

    def close(self) -> None:
        self.rows.close()
        self.log.close()


def load_scorer(settings: Settings, version: str | None,
                dataset: str | None = None) -> Scorer:
    """The Scorer of a version (default: the champion of `dataset`, else of the dataset
    serving would serve), every file verified. The configured spec is read (YAML) only when
    it decides: a registry of several datasets, none named."""
    registry = Registry.from_settings(settings)
    if version is None and dataset is None and settings.registry.dataset is None \
            and len(registry.chain.current().datasets()) > 1:
        registry = registry_for(settings)
    return load_champion(registry, version, dataset)


class Batch:
    """Scores an input's chunks in order; counts the rows and keeps the errors. Application
    ids are read one by one only when they are recorded or need a closer look."""

    def __init__(self, scorer: Scorer, log: DecisionLog | None, request_id: str):
        self.scorer, self.log, self.request_id = scorer, log, request_id
        self.rows = 0
        self.failed = 0
        self.errors: list[tuple[int, str]] = []  # (row number, why)
        self._checked = False

    def score(self, chunk: pa.RecordBatch) -> dict[str, list[Any]]:
        """The result columns of one chunk."""
        header = chunk.schema.names
        if not self._checked:
            check_header(self.scorer, header)
            self._checked = True
        n = chunk.num_rows
        columns = {f["name"]: field_values(f, chunk.column(f["name"]))
                   for f in self.scorer.fields}
        id_column = application_id_column(self.scorer, header)
        ids: list[str | None] | None = None
        id_errors: dict[int, dict[str, str]] = {}
        if id_column is not None and (self.log is not None
                                      or not plain_ids(chunk.column(id_column))):
            ids = [i or None for i in texts(chunk.column(id_column))]
            for i, app_id in enumerate(ids):
                why = application_id_error(app_id)
                if why:
                    id_errors[i] = {id_column: why}
        out = score_columns(self.scorer, columns, n, ids, id_errors, self.log, self.request_id)
        for i, why in enumerate(out["error"]):
            if why is not None:
                self.errors.append((self.rows + i + 1, why))
        self.failed += sum(e is not None for e in out["error"])
        self.rows += n
        return out


def check_header(scorer: Scorer, header: Sequence[str]) -> None:
    """PredictInputError when the input lacks a model field or has a result column."""
    missing = [f["name"] for f in scorer.fields if f["name"] not in header]
    if missing:
        raise PredictInputError(f"columns missing from the input: {', '.join(missing)}")
    clash = [c for c in RESULT_COLUMNS if c in header]
    if clash:
        raise PredictInputError(f"the input has result columns already: {', '.join(clash)}")


def field_values(field: dict[str, Any], column: pa.Array) -> Any:
    """A field's cells as application values: for a numeric field whose cells are all numbers
    or missing, a float64 array (NaN: missing); else a list, None when missing, a number for a
    numeric field (the text as it was when it is not one: validation then says so), else the
    text."""
    if field["type"] != "category":
        parsed = numbers(column)
        if parsed is not None:
            return parsed
    coded = distinct_texts(column)
    if coded is not None:  # categories repeat: each distinct cell read once
        values, codes = coded
        return np.array([parse_cell(field, v) for v in values] + [None],
                        dtype=object)[codes].tolist()
    memo: dict[str | None, Any] = {}
    return [memo[cell] if cell in memo else memo.setdefault(cell, parse_cell(field, cell))
            for cell in texts(column)]


def parse_cell(field: dict[str, Any], cell: str | None) -> Any:
    """A cell as an application value (see `field_values`)."""
    if cell is None or cell in MISSING or not cell.strip():
        return None
    return cell if field["type"] == "category" else value_from_text(field, cell)


def report_bad_rows(errors: Sequence[tuple[int, str]], path: Path | None) -> None:
    """The rows not scored: the first on stderr, every one in the errors file (when given)."""
    for number, why in errors[:MAX_REPORTED]:
        print(f"row {number}: {shown(why)}", file=sys.stderr)
    if len(errors) > MAX_REPORTED:
        print(f"... and {len(errors) - MAX_REPORTED} more rows not scored"
              + (f" (see {path})" if path else " (see the error column)"), file=sys.stderr)
    if path is None or not errors:
        return
    try:
        with path.open("w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
            write_errors(fh, errors)
    except OSError as exc:
        raise PredictInputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_errors(fh: IO[str], errors: Sequence[tuple[int, str]]) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(["row", "error"])
    writer.writerows(errors)


def application_id_column(scorer: Scorer, header: Sequence[str]) -> str | None:
    """The input column with the application id: the dataset's base table key, if present."""
    spec = scorer.manifest.get("spec") or {}
    key = (spec.get("tables") or {}).get(spec.get("base"), {}).get("key")
    names = {f["name"] for f in scorer.fields}
    return key if key in header and key not in names else None
