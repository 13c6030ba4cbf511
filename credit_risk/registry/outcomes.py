"""Observed outcomes of decided applications (application_id, defaulted, observed_at), stored
beside the decision log for performance monitoring on matured loans.

`open_outcomes(settings)` opens the store `CREDIT_RISK_OUTCOMES` names:

- a path: `JsonlOutcomes`, one JSON line per observation (the embedded default: outcomes.jsonl
  in the decision log's folder).
- a URL `postgresql+psycopg://...`: `credit_risk.registry.outcomes_pg.PostgresOutcomes`, the
  `outcomes` table (created by the same Alembic migrations as the decisions; imported only
  for such a URL). Unset and the decision log in PostgreSQL: that database.

Loads are idempotent: an observation is keyed by (application_id, observed_at); loading it
again stores nothing (the first load of a key wins). Reads are windowed by observed_at and
chunked. `read_csv` and `read_sql` turn a file or a query into checked observations, naming
the row, column and value of any problem (`OutcomesError`). Serving slice: no pandas.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_risk.errors import CreditRiskError

if TYPE_CHECKING:
    from credit_risk.config import Settings

COLUMNS = ("application_id", "defaulted", "observed_at")
CHUNK_ROWS = 10_000
MAX_ID_CHARS = 100
TRUE = frozenset({"1", "true", "t", "yes", "y"})
FALSE = frozenset({"0", "false", "f", "no", "n"})
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Observation = dict[str, Any]  # {"application_id": str, "defaulted": bool, "observed_at": datetime}


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


def observation(row: Mapping[str, Any]) -> Observation:
    """One checked observation; ValueError naming the column and value."""
    return {"application_id": parse_id(row.get("application_id")),
            "defaulted": parse_defaulted(row.get("defaulted")),
            "observed_at": parse_observed_at(row.get("observed_at"))}


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

    def load(self, observations: Iterable[Observation]) -> int:
        """Store the observations not stored yet (by application_id and observed_at); how many
        were new."""
        raise NotImplementedError

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Observation]]:
        """The observations with observed_at in [since, until), in lists of at most
        `chunk_rows`, oldest first; observed_at as an ISO string."""
        raise NotImplementedError

    def count(self) -> int:
        return sum(len(c) for c in self.iter_chunks())

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> list[Observation]:
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


def _key(obs: Observation) -> tuple[str, str]:
    return obs["application_id"], _iso(obs["observed_at"])


def _iso(t: datetime | str) -> str:
    return (t if isinstance(t, datetime) else parse_observed_at(t)).astimezone(UTC).isoformat()


class JsonlOutcomes(OutcomeStore):
    """JSON lines; a load reads the stored keys and appends the new lines in one write, under
    an exclusive lock (two loads at once: the second sees the first's lines)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def load(self, observations: Iterable[Observation]) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutcomesError(f"outcomes {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as fh:
                seen = {_key(o) for chunk in self._chunks(fh, None, None, CHUNK_ROWS)
                        for o in chunk}
            lines = []
            for obs in observations:
                key = _key(obs)
                if key in seen:
                    continue
                seen.add(key)
                lines.append(json.dumps({"application_id": key[0],
                                         "defaulted": bool(obs["defaulted"]),
                                         "observed_at": key[1],
                                         "loaded_at": datetime.now(UTC).isoformat()}) + "\n")
            data = "".join(lines).encode()
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, start)  # whole lines or none
                raise OutcomesError(f"outcomes {self.path}: {exc.strerror or exc}") from exc
            return len(lines)
        finally:
            os.close(fd)

    def iter_chunks(self, since: datetime | None = None, until: datetime | None = None, *,
                    chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Observation]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            yield from self._chunks(fh, since, until, chunk_rows)

    @staticmethod
    def _chunks(fh: Any, since: datetime | None, until: datetime | None,
                chunk_rows: int) -> Iterator[list[Observation]]:
        lo = None if since is None else parse_observed_at(since)
        hi = None if until is None else parse_observed_at(until)
        chunk: list[Observation] = []
        for line in fh:
            try:
                rec = json.loads(line)
                at = parse_observed_at(rec["observed_at"])
            except (ValueError, KeyError, TypeError):
                continue
            if (lo is not None and at < lo) or (hi is not None and at >= hi):
                continue
            chunk.append({"application_id": rec["application_id"],
                          "defaulted": bool(rec["defaulted"]), "observed_at": at.isoformat()})
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def outcomes_target(settings: Settings) -> Path | str:
    """Where the settings put outcomes: CREDIT_RISK_OUTCOMES, else beside the decision log."""
    if settings.monitoring.outcomes is not None:
        return settings.monitoring.outcomes
    log = settings.decisions.url
    if isinstance(log, str):  # the decision log's database
        return log
    return (Path(log).parent if log is not None else Path("var/decisions")) / "outcomes.jsonl"


def open_outcomes(settings: Settings | None = None, target: Path | str | None = None
                  ) -> OutcomeStore:
    """The outcome store of a target (a path or a PostgreSQL URL), by default the settings'."""
    if target is None:
        assert settings is not None
        target = outcomes_target(settings)
    if isinstance(target, str) and "://" in target:
        scheme = target.split("://", 1)[0].lower()
        if scheme not in ("postgresql+psycopg", "postgresql", "postgres"):
            raise OutcomesError(f"outcomes URL scheme {scheme!r}: only postgresql+psycopg:// "
                                "is supported")
        try:
            from credit_risk.registry.outcomes_pg import PostgresOutcomes
        except ModuleNotFoundError as exc:
            raise OutcomesError(f"outcomes in PostgreSQL need the postgres extra (no module "
                                f"named {exc.name!r})") from exc
        return PostgresOutcomes(target)
    return JsonlOutcomes(Path(target))
