"""Observed outcomes of decided applications (application_id, defaulted, observed_at), stored
beside the decision log for performance monitoring on matured loans.

`Observation` is the record (checked on every read and write); `OutcomeStore` the interface,
`JsonlOutcomes` the embedded default (outcomes.jsonl in the decision log's folder), the
PostgreSQL store in `outcomes_pg` (the `outcomes` table of the decision log's migrations);
`backends.open_outcomes` opens the one the settings name.

Loads are idempotent: an observation is keyed by (application_id, observed_at); loading it
again stores nothing (the first load of a key wins). Reads are windowed by observed_at and
chunked. `read_csv` and `read_sql` turn a file or a query into checked observations, naming
the row, column and value of any problem (`OutcomesError`). Serving slice: no pandas.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, ValidationError

from credit_risk.errors import CreditRiskError
from credit_risk.records.jsonl import JsonlFile, dumps_line, loads_line, read_locked

COLUMNS = ("application_id", "defaulted", "observed_at")
CHUNK_ROWS = 10_000
MAX_ID_CHARS = 100
TRUE = frozenset({"1", "true", "t", "yes", "y"})
FALSE = frozenset({"0", "false", "f", "no", "n"})
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OutcomesError(CreditRiskError, ValueError):
    """Outcomes that cannot be read or stored (a bad file, column or value, or the store)."""


# -- checking observations -----------------------------------------------------------------
def parse_id(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise ValueError("application_id is empty")
    if len(text) > MAX_ID_CHARS:
        raise ValueError(f"application_id is longer than {MAX_ID_CHARS} characters")
    if CONTROL.search(text):
        raise ValueError("application_id holds a control character")
    return text


def parse_defaulted(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = "" if value is None else str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"defaulted {_show(value)} is not yes/no, true/false or 1/0")


def parse_observed_at(value: Any) -> datetime:
    """A date or time as an aware UTC datetime (a date: its midnight; naive: UTC)."""
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, date):
        t = datetime(value.year, value.month, value.day)
    else:
        try:
            t = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"observed_at {_show(value)} is not an ISO date or time "
                             "(YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class Observation(BaseModel):
    """One observed outcome: the loan's application_id, whether it defaulted, when (UTC)."""

    model_config = ConfigDict(frozen=True)

    application_id: Annotated[str, BeforeValidator(parse_id)]
    defaulted: Annotated[bool, BeforeValidator(parse_defaulted)]
    observed_at: Annotated[AwareDatetime, BeforeValidator(parse_observed_at)]

    def key(self) -> tuple[str, str]:
        return self.application_id, self.observed_at.isoformat()

    def record(self) -> dict[str, Any]:
        """As stores give it back: observed_at as an ISO string."""
        return {"application_id": self.application_id, "defaulted": self.defaulted,
                "observed_at": self.observed_at.isoformat()}


def observation(row: Mapping[str, Any] | Observation) -> Observation:
    """One checked observation; ValueError naming the column and value."""
    if isinstance(row, Observation):
        return row
    try:
        return Observation.model_validate({c: row.get(c) for c in COLUMNS})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(str(first["msg"]).removeprefix("Value error, ")) from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _missing(columns: Iterable[str]) -> list[str]:
    have = set(columns)
    return [c for c in COLUMNS if c not in have]


def read_csv(path: Path | str, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Observation]]:
    """The observations of a CSV file (columns application_id, defaulted, observed_at; others
    ignored), in chunks. The whole file is checked before the first chunk is given, so a bad
    file stores nothing."""
    path = Path(path)
    for check_only in (True, False):
        chunk: list[Observation] = []
        for obs in _csv_rows(path):
            if check_only:
                continue
            chunk.append(obs)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _csv_rows(path: Path) -> Iterator[Observation]:
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise OutcomesError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    with fh:
        reader = csv.DictReader(fh)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise OutcomesError(f"{path}: not a CSV file: {exc}") from exc
        if not header:
            raise OutcomesError(f"{path}: empty, expected a header "
                                f"({', '.join(COLUMNS)})")
        missing = _missing(h.strip() for h in header)
        if missing:
            raise OutcomesError(f"{path}: no column {', '.join(missing)} (the header has "
                                f"{', '.join(header)[:200]})")
        line = 1
        try:
            for line, row in enumerate(reader, start=2):
                try:
                    yield observation({(k or "").strip(): v for k, v in row.items()})
                except ValueError as exc:
                    raise OutcomesError(f"{path}, line {line}: {exc}") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise OutcomesError(f"{path}, line {line + 1}: not CSV: {exc}") from exc


def read_sql(url: str, query: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Observation]]:
    """The observations a SQL query gives (columns application_id, defaulted, observed_at),
    streamed in chunks (a bad row stops the load; what was loaded before it stays, and loading
    again is harmless)."""
    try:
        import sqlalchemy as sa
        from sqlalchemy import exc as sa_exc
    except ModuleNotFoundError as exc:
        raise OutcomesError("loading outcomes from SQL needs the postgres extra: pip install "
                            "-c constraints.txt 'credit-risk[postgres]'") from exc
    try:
        engine = sa.create_engine(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise OutcomesError(f"not a database URL: {exc}") from exc
    except ModuleNotFoundError as exc:
        raise OutcomesError(f"no driver for the database URL: {exc.name}") from exc
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_rows) \
                .execute(sa.text(query))
            names = list(result.keys())
            missing = _missing(names)
            if missing:
                raise OutcomesError(f"the query gives no column {', '.join(missing)} (it gives "
                                    f"{', '.join(names)[:200]})")
            n = 0
            for part in result.partitions(chunk_rows):
                chunk = []
                for row in part:
                    n += 1
                    try:
                        chunk.append(observation(dict(row._mapping)))
                    except ValueError as exc:
                        raise OutcomesError(f"query row {n}: {exc}") from None
                yield chunk
    except sa_exc.SQLAlchemyError as exc:
        inner = getattr(exc, "orig", None) or exc
        first = (str(inner).strip().splitlines() or [""])[0]
        raise OutcomesError(f"{where}: the query failed: {type(inner).__name__}: "
                            f"{first}") from exc
    finally:
        engine.dispose()


# -- the stores ------------------------------------------------------------------------------
class OutcomeStore:
    """Where outcomes are kept; the backends subclass it."""

    def load(self, observations: Iterable[Observation | Mapping[str, Any]]) -> int:
        """Store the observations not stored yet (by application_id and observed_at); how many
        were new. Each is checked first (OutcomesError naming the problem)."""
        raise NotImplementedError

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
        """The observations with observed_at in [since, until), in lists of at most
        `chunk_rows`, oldest first, as `Observation.record()`s."""
        raise NotImplementedError

    def count(self) -> int:
        return sum(len(c) for c in self.iter_chunks())

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> list[dict[str, Any]]:
        return [o for chunk in self.iter_chunks(since, until) for o in chunk]

    def migrate(self) -> str | None:
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> OutcomeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def checked(observations: Iterable[Observation | Mapping[str, Any]]) -> Iterator[Observation]:
    """Each observation checked; OutcomesError naming the first bad one."""
    for n, obs in enumerate(observations, start=1):
        try:
            yield observation(obs)
        except ValueError as exc:
            raise OutcomesError(f"observation {n}: {exc}") from None


class JsonlOutcomes(OutcomeStore):
    """JSON lines, fsynced; a load reads the stored keys and appends the new lines in one
    write, under an exclusive lock (two loads at once: the second sees the first's lines)."""

    def __init__(self, path: Path | str):
        self.file = JsonlFile(path, fsync=True)
        self.path = self.file.path

    def describe(self) -> str:
        return str(self.path)

    def load(self, observations: Iterable[Observation | Mapping[str, Any]]) -> int:
        new = list(checked(observations))  # a bad one stores nothing
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.file.locked(os.O_RDWR | os.O_APPEND | os.O_CREAT) as fd:
                with read_locked(fd) as fh:
                    seen = {obs.key() for obs in _stored(fh)}
                lines = []
                loaded_at = datetime.now(UTC).isoformat()
                for obs in new:
                    if obs.key() not in seen:
                        seen.add(obs.key())
                        lines.append(dumps_line({**obs.record(), "loaded_at": loaded_at}))
                self.file.append(b"".join(lines), fd)
        except OSError as exc:
            raise OutcomesError(f"outcomes {self.path}: {exc.strerror or exc}") from exc
        return len(lines)

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
        """Lines that are not an `Observation` are skipped."""
        lo = None if since is None else parse_observed_at(since)
        hi = None if until is None else parse_observed_at(until)
        chunk: list[dict[str, Any]] = []
        for obs in _stored(self.file.lines()):
            if (lo is not None and obs.observed_at < lo) or (hi is not None
                                                              and obs.observed_at >= hi):
                continue
            chunk.append(obs.record())
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _stored(lines: Iterable[bytes]) -> Iterator[Observation]:
    """The lines that are stored observations, checked."""
    for line in lines:
        try:
            rec = loads_line(line)
            yield Observation.model_validate({c: rec[c] for c in COLUMNS})
        except (ValueError, TypeError, KeyError):
            continue
