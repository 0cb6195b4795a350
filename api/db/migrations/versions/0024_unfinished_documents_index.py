"""an index of the contract PDFs not yet finished

A contract's PDF is finished after its signing transaction commits (so that neither
SQLite's write lock nor the contract-number counter waits for three PDF signatures); the
worker finishes what a crash interrupted, and looks for it every second among every
contract's PDF. A partial index holds only the unfinished ones: the orders being signed.

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_contract_documents_unfinished",
        "contract_documents",
        ["order_id"],
        sqlite_where=sa.text("complete = 0"),
        postgresql_where=sa.text("NOT complete"),
    )


def downgrade() -> None:
    op.drop_index("ix_contract_documents_unfinished", table_name="contract_documents")
