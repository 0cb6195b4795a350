"""signing pages a buyer can trust (issue 19): the separate consent to the
personal-information notice (version and time, per citizen), and when a party was first
shown the contract password (afterwards it is shown again only after a fresh SMS code)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("citizens") as batch:
        batch.add_column(sa.Column("pi_consent_version", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("pi_consent_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("contract_parties") as batch:
        batch.add_column(sa.Column("password_shown_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contract_parties") as batch:
        batch.drop_column("password_shown_at")
    with op.batch_alter_table("citizens") as batch:
        batch.drop_column("pi_consent_at")
        batch.drop_column("pi_consent_version")
