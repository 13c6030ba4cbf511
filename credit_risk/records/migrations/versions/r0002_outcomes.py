"""The outcomes table: observed outcomes of decided applications, for performance monitoring.

Revision ID: 0002_outcomes
Revises: 0001_decisions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_outcomes"
down_revision = "0001_decisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("application_id", sa.Text, nullable=False,
                  comment="the id recorded with the decision (inputs.application_id)"),
        sa.Column("defaulted", sa.Boolean, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        # One row per observation: loading the same file or query again stores nothing.
        sa.UniqueConstraint("application_id", "observed_at", name="uq_outcomes_observation"),
        comment="credit-risk observed outcomes (credit-risk outcomes load)",
    )
    # Windowed reads page by (observed_at, id).
    op.create_index("ix_outcomes_observed_at_id", "outcomes", ["observed_at", "id"])


def downgrade() -> None:
    op.drop_table("outcomes")
