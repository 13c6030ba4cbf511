"""The decision_batches table: one row per batch of `credit-risk predict --log`, its decisions
gzip-compressed in `data`.

Revision ID: 0003_decision_batches
Revises: 0002_outcomes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_decision_batches"
down_revision = "0002_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_batches",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the batch was recorded (UTC): its decisions' time"),
        sa.Column("request_id", sa.Text, nullable=False, comment="the run id"),
        sa.Column("model_version", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("rows", sa.Integer, nullable=False, comment="decisions stored: rows scored"),
        sa.Column("failed", sa.Integer, nullable=False, comment="rows not scored"),
        sa.Column("input_name", sa.Text),
        sa.Column("input_bytes", sa.BigInteger),
        sa.Column("input_sha256", sa.Text),
        sa.Column("codec", sa.Text, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False, comment="of data"),
        sa.Column("data", sa.LargeBinary, nullable=False,
                  comment="the decisions as JSON lines, compressed (codec)"),
        comment="credit-risk decision log: batches of `credit-risk predict --log`",
    )
    op.create_index("ix_decision_batches_at_id", "decision_batches", ["at", "id"])


def downgrade() -> None:
    op.drop_table("decision_batches")
