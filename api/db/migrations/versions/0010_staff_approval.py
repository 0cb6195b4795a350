"""staff approval (入网审核): agents and seal keepers a company admin adds wait for a
regulator; every staff member already there is approved

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The server default approves every existing row: they were working before review
    # existed, and locking them out on upgrade would stop every sales office at once.
    with op.batch_alter_table("staff_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "approval",
                sa.Enum(
                    "pending",
                    "approved",
                    "rejected",
                    name="staff_approval",
                    native_enum=False,
                    length=32,
                ),
                server_default="approved",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("reviewed_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("review_reason", sa.String(length=500), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_members", schema=None) as batch_op:
        for column in ("review_reason", "reviewed_at", "reviewed_by", "approval"):
            batch_op.drop_column(column)
