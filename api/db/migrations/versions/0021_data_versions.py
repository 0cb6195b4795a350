"""data versions: counters that public read caches are checked against

A commit that changes a building's units, a contract or the register bumps the counters
of the scopes it touched in the same transaction (api.core.versions).

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_versions",
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_data_versions")),
    )


def downgrade() -> None:
    op.drop_table("data_versions")
