"""a staff member's phone is a staff login only once its owner confirmed it with a code:
``phone_confirmed_at``. Staff already there keep working (confirmed at their creation).

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("phone_confirmed_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE staff_members SET phone_confirmed_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("staff_members", schema=None) as batch_op:
        batch_op.drop_column("phone_confirmed_at")
