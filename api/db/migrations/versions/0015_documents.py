"""contract documents: the signed PDF of each contract, and time-stamp tokens

The PDF grows one incremental revision per signing act (api.contracts.pdfs); its SHA-256
once finished is indexed for public verify-pdf. Each signing act's CMS signature gets an
RFC 3161 token that evidence bundles carry.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contract_documents",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["contract_orders.id"],
            name=op.f("fk_contract_documents_order_id_contract_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_documents")),
        sa.UniqueConstraint("order_id", name=op.f("uq_contract_documents_order_id")),
    )
    op.create_index(op.f("ix_contract_documents_pdf_sha256"), "contract_documents", ["pdf_sha256"])
    op.create_table(
        "contract_timestamps",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("signer_key", sa.String(length=64), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("stamped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["contract_orders.id"],
            name=op.f("fk_contract_timestamps_order_id_contract_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_timestamps")),
        sa.UniqueConstraint(
            "order_id", "signer_key", name=op.f("uq_contract_timestamps_order_id_signer_key")
        ),
    )
    op.create_index(op.f("ix_contract_timestamps_order_id"), "contract_timestamps", ["order_id"])


def downgrade() -> None:
    op.drop_table("contract_timestamps")
    op.drop_table("contract_documents")
