"""A decision id, unique: the spool's shipper inserts with ON CONFLICT DO NOTHING, so a batch
shipped twice (after a crash between its commit and the note of its offset) is stored once.

Revision ID: 0004_decision_id
Revises: 0003_decision_batches
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_decision_id"
down_revision = "0003_decision_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column(
        "decision_id", sa.Text, nullable=True,
        comment="unique id of a spooled decision (NULL: committed directly)"))
    op.create_index("uq_decisions_decision_id", "decisions", ["decision_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_decisions_decision_id", "decisions")
    op.drop_column("decisions", "decision_id")
