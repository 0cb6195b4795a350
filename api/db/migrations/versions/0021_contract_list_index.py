"""a company's contracts in creation order: one index for the staff list

(company_id, created_at, id) replaces the index on company_id alone (its prefix serves
every lookup that one did), so a page of the newest contracts is read in index order
instead of sorting all of a company's contracts.

Revision ID: 0021_contract_list_index
Revises: 0020_data_versions
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021_contract_list_index"
down_revision: str | None = "0020_data_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_contract_orders_company_created",
        "contract_orders",
        ["company_id", "created_at", "id"],
    )
    op.drop_index("ix_contract_orders_company_id", table_name="contract_orders")


def downgrade() -> None:
    op.create_index("ix_contract_orders_company_id", "contract_orders", ["company_id"])
    op.drop_index("ix_contract_orders_company_created", table_name="contract_orders")
