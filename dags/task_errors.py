"""How the credit-risk DAGs' tasks fail: at once on errors a retry cannot fix.

`fails_fast` wraps a task's callable: an error the project raises for bad data, a bad spec or
settings, or a refused artifact (`credit_risk.errors.CreditRiskError`) fails the task at once,
without its retries; any other error (a full disk, a network blip, a bug) keeps the DAG's
retries. `settings()` reads the project's settings, and invalid settings fail at once too.

Not a DAG file (listed in .airflowignore); the DAG files import it from the bundle folder,
which Airflow puts on sys.path when it parses them and when it runs their tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from credit_risk.errors import CreditRiskError

if TYPE_CHECKING:
    from credit_risk.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def fails_fast(fn: F) -> F:
    """The task callable, failing without retries on a CreditRiskError."""

    @functools.wraps(fn)
    def task_callable(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CreditRiskError as exc:
            raise AirflowFailException(
                f"{type(exc).__name__}: {exc} (not retried: a retry cannot fix this)") from exc

    task_callable.fails_fast = True  # type: ignore[attr-defined]  # checked by tests/dags
    return task_callable  # type: ignore[return-value]


def settings() -> Settings:
    """The project's settings from the environment; invalid ones fail the task at once."""
    from pydantic import ValidationError

    from credit_risk.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise AirflowFailException(f"invalid credit-risk settings: {exc}") from exc
