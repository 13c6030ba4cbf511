"""Which backend a setting names: a path is a JSONL file, a `postgresql+psycopg://` URL the
database (its modules imported only then, so the default needs neither SQLAlchemy nor a
server). Also retention of the decision log, which the monitoring DAG and the CLI run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_risk.records.decisions import DecisionLog, DecisionLogError, JsonlDecisionLog
from credit_risk.records.outcomes import JsonlOutcomes, OutcomesError, OutcomeStore

if TYPE_CHECKING:
    from credit_risk.config import Settings

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")
_EXTRA = "pip install -c constraints.txt 'credit-risk[postgres]'"


def is_database_url(target: object) -> bool:
    """Whether a setting names a database (a URL) rather than a file."""
    return isinstance(target, str) and "://" in target


def _scheme(target: str) -> str | None:
    """The URL's scheme when PostgreSQL does not serve it."""
    scheme = target.split("://", 1)[0].lower()
    return None if scheme in POSTGRES_SCHEMES else scheme


def decision_log_at(target: Path | str | None, **bounds: Any) -> DecisionLog:
    """The decision log at a path or a PostgreSQL URL (`bounds`: the database backend's
    queue_rows, batch_rows, commit_timeout_s, migrate). Connects to nothing yet."""
    if target is None or target == "":
        raise DecisionLogError("no decision log configured")
    if not is_database_url(target):
        return JsonlDecisionLog(Path(target))
    if (bad := _scheme(str(target))) is not None:
        raise DecisionLogError(f"decision log URL scheme {bad!r}: only "
                               "postgresql+psycopg:// is supported")
    try:
        from credit_risk.records.decisions_pg import PostgresDecisionLog
    except ModuleNotFoundError as exc:
        raise DecisionLogError(f"a PostgreSQL decision log needs the postgres extra (no module "
                               f"named {exc.name!r}): {_EXTRA}") from exc
    return PostgresDecisionLog(str(target), **bounds)


def open_decision_log(settings: Settings, *, spooled: bool = False) -> DecisionLog | None:
    """The decision log the settings name (None: decisions are not logged), with the
    settings' bounds for a database (and, with `decision_log_migrate_on_start`, a schema
    migrated whenever it is found behind the code). `spooled` (serving): a database log
    behind the spool folder `decision_log_spool`, when one is set."""
    target = settings.decisions.url
    if target is None:
        return None
    if not is_database_url(target):
        return decision_log_at(target)
    db_log = decision_log_at(target, queue_rows=settings.decisions.queue_rows,
                             batch_rows=settings.decisions.batch_rows,
                             commit_timeout_s=settings.decisions.commit_timeout_s,
                             migrate=settings.decisions.migrate_on_start)
    if not spooled or settings.decisions.spool is None:
        return db_log
    from credit_risk.records.decisions_pg import PostgresDecisionLog
    from credit_risk.records.decisions_spool import SpooledDecisionLog

    assert isinstance(db_log, PostgresDecisionLog)
    return SpooledDecisionLog(db_log, settings.decisions.spool)


def prune_decisions(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Enforce `decision_retention_days` on the configured decision log: delete decisions
    older than that (nothing when no retention is set). A summary for the task's log/XCom."""
    days = settings.decisions.retention_days
    if settings.decisions.url is None:
        return {"status": "no decision log", "deleted": 0}
    if days is None:
        return {"status": "kept: no retention set", "deleted": 0}
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    dlog = open_decision_log(settings)
    assert dlog is not None
    with dlog:
        deleted = dlog.prune(before)
        where = dlog.describe()
    log.info("decision log %s: deleted %d decisions before %s (retention %s days)",
             where, deleted, before.isoformat(), days)
    return {"status": "pruned", "log": where, "before": before.isoformat(), "deleted": deleted,
            "retention_days": days}


def outcomes_target(settings: Settings) -> Path | str:
    """Where the settings put outcomes: CREDIT_RISK_OUTCOMES, else beside the decision log."""
    if settings.monitoring.outcomes is not None:
        return settings.monitoring.outcomes
    target = settings.decisions.url
    if isinstance(target, str):  # the decision log's database
        return target
    return (Path(target).parent if target is not None else Path("var/decisions")) \
        / "outcomes.jsonl"


def open_outcomes(settings: Settings | None = None,
                  target: Path | str | None = None) -> OutcomeStore:
    """The outcome store of a target (a path or a PostgreSQL URL), by default the settings'."""
    if target is None:
        assert settings is not None
        target = outcomes_target(settings)
    if not is_database_url(target):
        return JsonlOutcomes(Path(target))
    if (bad := _scheme(str(target))) is not None:
        raise OutcomesError(f"outcomes URL scheme {bad!r}: only postgresql+psycopg:// "
                            "is supported")
    try:
        from credit_risk.records.outcomes_pg import PostgresOutcomes
    except ModuleNotFoundError as exc:
        raise OutcomesError(f"outcomes in PostgreSQL need the postgres extra (no module "
                            f"named {exc.name!r}): {_EXTRA}") from exc
    return PostgresOutcomes(str(target))
