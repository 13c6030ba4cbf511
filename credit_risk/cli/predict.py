"""`credit-risk predict`: score a CSV of applications with a published model.

The serving slice only (config, errors, spec, scoring, registry; the `csv` module, no pandas),
so it runs in an install of the serving extra. Every input column is kept as it was read and
the result columns are appended: `probability_of_default`, `risk`, `credit_score`, `rating`,
`reasons`, `warnings`, `model_version`, and `error` (which field is bad and why) for a row
that fails validation, which gets no PD. The scored rows are appended to the decision log in
one write before any output is written: when they cannot be logged, nothing is written and the
command fails. The application id (the column named by the dataset's base table key, e.g.
`loan_id`), when the input has it, is recorded with each decision as `inputs.application_id`,
so that observed outcomes can be joined to decisions later; it is not a model input, and is
checked as the API checks it.

Odd text is a bad row, never a failed command: a byte that is not UTF-8 is read as a lone
surrogate (``surrogateescape``) and written back unchanged, so a cell of a model field that
holds one, a control character or a bidi mark fails validation like any other bad value. The
rows not scored are listed on stderr by row number (1: the first row after the header).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from credit_risk.config import Settings
from credit_risk.errors import CreditRiskError
from credit_risk.records.backends import open_decision_log
from credit_risk.records.decisions import DecisionLog
from credit_risk.scoring.champion import load_champion, registry_for
from credit_risk.scoring.decide import decide
from credit_risk.scoring.request import application_id_error, value_from_text
from credit_risk.scoring.scorer import Scorer
from credit_risk.spec.fields import shown, validate_application

RESULT_COLUMNS = ("probability_of_default", "risk", "credit_score", "rating", "reasons",
                  "warnings", "model_version", "error")
# Cells that mean "no value" (pandas' defaults, which `predict` used to read CSVs with).
MISSING = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                     "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                     "nan", "null"})


class PredictInputError(CreditRiskError, ValueError):
    """The input CSV cannot be scored as a whole (unreadable, columns missing or clashing)."""


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    scorer = load_scorer(settings, args.version, getattr(args, "dataset", None))
    header, rows = read_csv(Path(args.input))
    log = open_decision_log(settings)
    out_rows = score_rows(scorer, header, rows, log)  # logged whole before any output
    columns = [*header, *RESULT_COLUMNS]
    report_bad_rows(out_rows)
    if args.output == "-":
        sys.stdout.flush()
        stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="",
                                  errors="surrogateescape", write_through=True)
        write_csv(stdout, columns, out_rows)
        stdout.detach()  # stdout itself stays open
    else:
        try:
            with open(args.output, "w", newline="", encoding="utf-8",
                      errors="surrogateescape") as fh:
                write_csv(fh, columns, out_rows)
        except OSError as exc:
            raise PredictInputError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        print(f"scored {len(out_rows)} rows with {scorer.version} -> {args.output}",
              file=sys.stderr)
    return 0


def load_scorer(settings: Settings, version: str | None,
                dataset: str | None = None) -> Scorer:
    """The Scorer of a version (default: the champion of `dataset`, else of the dataset
    serving would serve), every file verified."""
    return load_champion(registry_for(settings), version, dataset)


MAX_REPORTED = 20  # bad rows listed on stderr; the error column has every one


def report_bad_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    """The rows not scored, on stderr: their row number (1: the first after the header) and why."""
    bad = [(i + 1, row["error"]) for i, row in enumerate(rows) if row.get("error")]
    for number, why in bad[:MAX_REPORTED]:
        print(f"row {number}: {shown(why)}", file=sys.stderr)
    if len(bad) > MAX_REPORTED:
        print(f"... and {len(bad) - MAX_REPORTED} more rows not scored (see the error column)",
              file=sys.stderr)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows (cells as read; a byte that is not UTF-8 as a lone surrogate)
    of a CSV file with a header line."""
    reader: Any = None
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise PredictInputError(f"{path}: no header line")
            doubled = sorted({c for c in header if header.count(c) > 1})
            if doubled:
                raise PredictInputError(f"{path}: columns named twice: {', '.join(doubled)}")
            rows = []
            for cells in reader:
                if not cells:
                    continue  # a blank line
                if len(cells) > len(header):
                    raise PredictInputError(f"{path}, line {reader.line_num}: {len(cells)} "
                                            f"values for {len(header)} columns")
                rows.append(dict(zip(header, cells, strict=False)))
    except OSError as exc:
        raise PredictInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except csv.Error as exc:
        where = f", line {reader.line_num}" if reader is not None else ""
        raise PredictInputError(f"{path}{where}: not a valid CSV file: {exc}") from exc
    return header, rows


def parse_cell(field: Mapping[str, Any], cell: str | None) -> Any:
    """A cell as an application value: None when missing, a number for a numeric field
    (the text as it was when it is not one: validation then says so), else the text."""
    if cell is None or cell in MISSING or not cell.strip():
        return None
    return cell if field["type"] == "category" else value_from_text(field, cell)


def score_rows(scorer: Scorer, header: Sequence[str], rows: Sequence[Mapping[str, str]],
               log: DecisionLog | None = None) -> list[dict[str, Any]]:
    """The output rows: the input cells and the result columns, the decisions recorded in
    `log` first (credit_risk.scoring.decide). A row that fails validation gets `error`, no PD."""
    names = [f["name"] for f in scorer.fields]
    missing = [n for n in names if n not in header]
    if missing:
        raise PredictInputError(f"columns missing from the input: {', '.join(missing)}")
    clash = [c for c in RESULT_COLUMNS if c in header]
    if clash:
        raise PredictInputError(f"the input has result columns already: {', '.join(clash)}")
    out: list[dict[str, Any]] = [dict(row) for row in rows]
    valid: list[int] = []
    inputs: list[dict[str, Any]] = []
    id_column = application_id_column(scorer, header)
    for i, row in enumerate(rows):
        record = {f["name"]: parse_cell(f, row.get(f["name"])) for f in scorer.fields}
        clean, errors = validate_application(scorer.fields, record, scorer.rules)
        app_id = row.get(id_column) if id_column is not None else None
        why = application_id_error(app_id) if app_id else None
        if why:
            errors = {**errors, str(id_column): why}
        if errors:
            out[i]["error"] = "; ".join(f"{k} {v}" for k, v in errors.items())
        else:
            valid.append(i)
            if app_id:
                clean = {**clean, "application_id": app_id}  # recorded, not scored
            inputs.append(clean)
    decisions = decide(scorer, inputs, log, f"cli-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    for i, result in zip(valid, decisions, strict=True):
        out[i].update({c: result[c] for c in RESULT_COLUMNS if c in result},
                      reasons="; ".join(r["text"] for r in result["reasons"]),
                      warnings="; ".join(f"{w['field']} {w['message']}"
                                         for w in result["warnings"]))
    return out


def application_id_column(scorer: Scorer, header: Sequence[str]) -> str | None:
    """The input column with the application id: the dataset's base table key, if present."""
    spec = scorer.manifest.get("spec") or {}
    key = (spec.get("tables") or {}).get(spec.get("base"), {}).get("key")
    names = {f["name"] for f in scorer.fields}
    return key if key in header and key not in names else None


def write_csv(fh: IO[str], columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    writer = csv.DictWriter(fh, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
