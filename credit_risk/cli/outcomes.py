"""`credit-risk outcomes`: load observed outcomes (a CSV file or a SQL query), migrate their
table, show where they are. The serving slice only (registry, config, errors): no pandas.

`load FILE.csv` or `load --sql "SELECT application_id, defaulted, observed_at FROM ..."
--url-env VAR` (the database URL is read from the environment variable VAR, so no password is
on the command line). Loading the same observations again stores nothing new.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator

from credit_risk.cli.usage import UsageError
from credit_risk.config import Settings
from credit_risk.errors import CreditRiskError
from credit_risk.records.backends import open_outcomes
from credit_risk.records.outcomes import Observation, read_csv, read_sql


def _source(args: argparse.Namespace) -> tuple[str, Iterator[list[Observation]]]:
    if bool(args.file) == bool(args.sql):
        raise UsageError("outcomes load: give a CSV file or --sql (one of them)")
    if args.file:
        return args.file, read_csv(args.file)
    if not args.url_env:
        raise UsageError("outcomes load --sql: --url-env VAR names the environment "
                              "variable holding the database URL")
    url = os.environ.get(args.url_env, "").strip()
    if not url:
        raise CreditRiskError(f"outcomes load --sql: the environment variable {args.url_env} "
                              "is not set (it should hold the database URL)")
    return "the query", read_sql(url, args.sql)


def cmd_outcomes(args: argparse.Namespace, settings: Settings) -> int:
    with open_outcomes(settings) as store:
        if args.outcomes_cmd == "migrate":
            revision = store.migrate()
            print(f"{store.describe()}: schema at {revision}" if revision
                  else f"{store.describe()}: a file, no schema to migrate")
            return 0
        if args.outcomes_cmd == "status":
            print(json.dumps({"outcomes": store.describe(), "observations": store.count()}))
            return 0
        what, chunks = _source(args)
        read = new = 0
        for chunk in chunks:
            read += len(chunk)
            new += store.load(chunk)
        print(json.dumps({"source": what, "outcomes": store.describe(), "read": read,
                          "new": new, "already_stored": read - new}))
        return 0


def cmd_performance(args: argparse.Namespace, settings: Settings) -> int:
    """Performance on matured loans now (or as of a date): the monitoring DAG's task."""
    from datetime import UTC, datetime

    from credit_risk.pipeline.monitoring import performance_step
    from credit_risk.pipeline.run_reports import PerformanceReport, read_report

    as_of = None
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of)
        except ValueError:
            raise UsageError(f"--as-of {args.as_of!r}: not an ISO date "
                                  "(YYYY-MM-DD)") from None
    run_id = args.run_id or f"cli-performance-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    path = performance_step(settings, run_id, as_of)
    result = read_report(PerformanceReport, path)
    print(json.dumps({"report": path, "status": result.status, "alert": result.alert,
                      "alerts": [a.message if a.vintage is None else
                                 f"{a.model_version} {a.vintage}: {a.message}"
                                 for a in result.alerts]}, indent=2))
    return 0
