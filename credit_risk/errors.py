"""The project's errors: every error a user can cause or fix derives from CreditRiskError.

The CLI reports these as user errors (anything else is a bug and shows its traceback), and
pipeline tasks fail at once on them, without retries: a retry cannot fix bad data or config.
"""


class CreditRiskError(Exception):
    """A problem with the input, the data, the configuration or an artifact, not a bug."""
