"""escrow key rate: key supervised amounts computed from a regulator's amount per m² and
the project's building area

Accounts registered before keep the fixed key amounts stored in their milestones (no
``key_percent``); nothing is rewritten.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("escrow_supervised_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_rate_fen_per_m2", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("key_area", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("key_rate_set_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("key_rate_set_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("escrow_supervised_accounts", schema=None) as batch_op:
        for column in ("key_rate_set_at", "key_rate_set_by", "key_area", "key_rate_fen_per_m2"):
            batch_op.drop_column(column)
