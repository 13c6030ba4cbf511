"""Airflow UI pages for credit-risk: models (approve, roll back), run outputs, drift reports.

The pages themselves are the package credit_risk_ui beside this file (see .airflowignore).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _may_change(user) -> bool:
    """Whether a user may promote and roll back: Op and Admin only."""
    # Editing DAGs is not enough (the User role may); editing Variables is also required,
    # which Airflow gives to Op and Admin, in the simple auth manager and FAB's default roles.
    from airflow.api_fastapi.app import get_auth_manager

    auth = get_auth_manager()
    return bool(auth.is_authorized_dag(method="PUT", user=user)
                and auth.is_authorized_variable(method="PUT", user=user))


def _app():
    from airflow.api_fastapi.core_api.security import get_user
    from airflow.configuration import conf

    from credit_risk.config import Settings
    from credit_risk_ui import create_ui  # plugins/credit_risk_ui/, on Airflow's sys.path

    # Airflow's public URL ([api] base_url): the origin browsers post from when a proxy in
    # front terminates TLS or rewrites the host.
    base_url = conf.get("api", "base_url", fallback=None)
    return create_ui(Settings(), get_user, _may_change, origins=[base_url] if base_url else [])


class CreditRiskPlugin(AirflowPlugin):
    name = "credit_risk"
    fastapi_apps = [{"app": _app(), "url_prefix": "/credit-risk", "name": "credit-risk"}]
    external_views = [
        {"name": "Credit-risk models", "href": "credit-risk/", "destination": "nav",
         "url_route": "credit-risk-models", "category": "browse"},
        {"name": "Drift reports", "href": "credit-risk/monitoring", "destination": "nav",
         "url_route": "credit-risk-drift", "category": "browse"},
        {"name": "Run outputs", "href": "credit-risk/runs/{RUN_ID}", "destination": "dag_run",
         "url_route": "credit-risk-run"},
    ]
