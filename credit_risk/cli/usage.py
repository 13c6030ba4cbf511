"""Exit codes of every `credit-risk` command, and the error that means "wrong arguments"."""

from __future__ import annotations

from credit_risk.errors import CreditRiskError

OK = 0  # the work was done
FAILED = 1  # the work failed: bad data, a failed check, an unreachable store (message on stderr)
USAGE = 2  # the command line is wrong (argparse's code too): nothing was done


class UsageError(CreditRiskError):
    """Arguments that are wrong on their own, before any work: missing, contradictory, or not
    one of the choices (exit 2). A name that the work finds does not exist is a failure (1)."""
