"""`credit-risk decisions`: the decision log's schema, retention and state.

`migrate` creates or upgrades the database schema (PostgreSQL; a file needs none), `prune`
deletes decisions older than the retention (`CREDIT_RISK_DECISION_RETENTION_DAYS`, or
`--days`), `status` says where decisions go, whether they can be written, and how many there
are. The serving slice only (registry, config, errors): no pandas, no scoring.
"""

from __future__ import annotations

import argparse
import json

from credit_risk.config import Settings
from credit_risk.errors import CreditRiskError
from credit_risk.records.backends import open_decision_log, prune_decisions


def cmd_decisions(args: argparse.Namespace, settings: Settings) -> int:
    if settings.decisions.url is None:
        raise CreditRiskError("no decision log configured (CREDIT_RISK_DECISION_LOG)")
    if args.decisions_cmd == "prune":
        if args.days is not None:
            try:
                settings = settings.replace(decision_retention_days=args.days)
            except ValueError as exc:
                raise CreditRiskError(f"--days {args.days}: {exc}") from exc
        print(json.dumps(prune_decisions(settings)))
        return 0
    dlog = open_decision_log(settings)
    assert dlog is not None
    with dlog:
        if args.decisions_cmd == "migrate":
            revision = dlog.migrate()
            print(f"{dlog.describe()}: schema at {revision}" if revision
                  else f"{dlog.describe()}: a file, no schema to migrate")
            return 0
        ok = dlog.ok(min_interval_s=0)
        rows = dlog.count() if ok else None
        print(json.dumps({"log": dlog.describe(), "ok": ok,
                          "error": None if ok else dlog.last_error, "decisions": rows}))
        return 0 if ok else 1
