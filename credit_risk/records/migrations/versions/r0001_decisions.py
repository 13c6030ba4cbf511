"""The decisions table: one row per scored application.

Revision ID: 0001_decisions
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_decisions"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the decision was recorded (UTC)"),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text),
        sa.Column("probability_of_default", sa.Double),
        sa.Column("credit_score", sa.Integer),
        sa.Column("rating", sa.Text),
        sa.Column("risk", sa.Text),
        sa.Column("inputs", postgresql.JSONB, nullable=False,
                  comment="the application as validated"),
        sa.Column("result", postgresql.JSONB, nullable=False,
                  comment="the whole answer: PD, score, rating, risk, reasons, warnings"),
        comment="credit-risk decision log: every decision is recorded before it is returned",
    )
    # Windowed reads page by (at, id); monitoring filters by model version within a window;
    # audits look a request up by its id.
    op.create_index("ix_decisions_at_id", "decisions", ["at", "id"])
    op.create_index("ix_decisions_model_version_at", "decisions", ["model_version", "at"])
    op.create_index("ix_decisions_request_id", "decisions", ["request_id"])


def downgrade() -> None:
    op.drop_table("decisions")
