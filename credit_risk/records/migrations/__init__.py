"""Alembic migrations of the decision-log database (run by `credit-risk decisions migrate`)."""
