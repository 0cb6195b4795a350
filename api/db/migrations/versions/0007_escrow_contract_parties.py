"""escrow contract parties: escrow's own record of who signed a contract it holds money for

Escrow used to ask the contracts context, through a function left on the app state,
whether a citizen was a party; it now keeps the parties itself. Contracts already handed
over are filled in from the contract parties bound when they signed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "escrow_contract_parties",
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("citizen_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["escrow_contracts.contract_id"],
            name=op.f("fk_escrow_contract_parties_contract_id_escrow_contracts"),
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizens.id"],
            name=op.f("fk_escrow_contract_parties_citizen_id_citizens"),
        ),
        sa.PrimaryKeyConstraint(
            "contract_id", "citizen_id", name=op.f("pk_escrow_contract_parties")
        ),
    )
    op.execute(
        "INSERT INTO escrow_contract_parties (contract_id, citizen_id) "
        "SELECT DISTINCT e.contract_id, p.citizen_id FROM escrow_contracts e "
        "JOIN contract_parties p ON p.order_id = e.contract_id "
        "WHERE p.citizen_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("escrow_contract_parties")
