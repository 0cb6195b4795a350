"""SMS code quotas per purpose: a send records what the code was for, so anonymous login
sends (anyone may ask for any phone) never spend the quota of a party's signing or
sealing codes. Sends recorded before count as logins.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sms_sends", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=32), server_default="login", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sms_sends", schema=None) as batch_op:
        batch_op.drop_column("purpose")
