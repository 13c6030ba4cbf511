"""The credit-risk pages of the Airflow UI, mounted by plugins/credit_risk_plugin.py.

Airflow puts plugins/ on sys.path, so this package imports as `credit_risk_ui`; the library
`credit_risk` never imports it.
"""

from .app import create_ui
from .files import is_report

__all__ = ["create_ui", "is_report"]
