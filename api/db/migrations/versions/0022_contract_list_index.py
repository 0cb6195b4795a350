"""contract indexes for a million contracts: the staff list and the building table

(company_id, created_at, id) replaces the index on company_id alone (its prefix serves
every lookup that one did), so a page of a company's newest contracts is read in index
order instead of sorting all of them; (building_id, status, unit_id, filing_number,
expires_at, updated_at) replaces the one on building_id alone and holds every column the
public building table reads, so its statuses come from the index alone.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_contract_orders_company_created",
        "contract_orders",
        ["company_id", "created_at", "id"],
    )
    op.drop_index("ix_contract_orders_company_id", table_name="contract_orders")
    op.create_index(
        "ix_contract_orders_building_status",
        "contract_orders",
        ["building_id", "status", "unit_id", "filing_number", "expires_at", "updated_at"],
    )
    op.drop_index("ix_contract_orders_building_id", table_name="contract_orders")


def downgrade() -> None:
    op.create_index("ix_contract_orders_building_id", "contract_orders", ["building_id"])
    op.drop_index("ix_contract_orders_building_status", table_name="contract_orders")
    op.create_index("ix_contract_orders_company_id", "contract_orders", ["company_id"])
    op.drop_index("ix_contract_orders_company_created", table_name="contract_orders")
