"""instruction deliveries: approved refunds and releases pushed to the bank's gateway

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "escrow_instruction_deliveries",
        sa.Column("instruction_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "acknowledged",
                "dead",
                name="escrow_delivery_state",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bank_reference", sa.String(length=100), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instruction_id"],
            ["escrow_instructions.id"],
            name=op.f("fk_escrow_instruction_deliveries_instruction_id_escrow_instructions"),
        ),
        sa.PrimaryKeyConstraint("instruction_id", name=op.f("pk_escrow_instruction_deliveries")),
    )
    op.create_index(
        op.f("ix_escrow_instruction_deliveries_next_attempt_at"),
        "escrow_instruction_deliveries",
        ["next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_escrow_instruction_deliveries_next_attempt_at"),
        table_name="escrow_instruction_deliveries",
    )
    op.drop_table("escrow_instruction_deliveries")
