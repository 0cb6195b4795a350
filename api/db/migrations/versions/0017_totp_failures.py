"""TOTP failures are counted like SMS code failures: five wrong in a row lock the
authenticator for 30 minutes (the seal and staff login had no limit on guesses)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("totp_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("totp_last_failure_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("totp_locked_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_members", schema=None) as batch_op:
        for column in ("totp_locked_until", "totp_last_failure_at", "totp_failures"):
            batch_op.drop_column(column)
