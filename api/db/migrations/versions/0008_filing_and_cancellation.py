"""filing and cancellation: a contract's life after the seal

Orders get a business number (网签业务宗号), filing (备案) columns and a reminder mark;
the live-unit index holds every status but the ended ones; cancellations (退房) with
their signatures and supporting documents; escrow learns an order from its issue
(business number, no contract number yet) and when it was cancelled.

Contracts sealed before filing existed wait for a regulator's decision like new ones
(``signed`` becomes ``filing_pending``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_LIVE = "status IN ('draft', 'awaiting_signatures', 'awaiting_seal', 'signed')"
NEW_LIVE = "status NOT IN ('expired', 'voided', 'cancelled')"
OPEN_CANCELLATION = "status IN ('awaiting_signatures', 'awaiting_seal', 'awaiting_review')"


def _live_index(batch_op: object, where: str) -> None:
    batch_op.create_index(  # type: ignore[attr-defined]
        "uq_contract_orders_live_unit",
        ["unit_id"],
        unique=True,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    with op.batch_alter_table("contract_orders", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_contract_orders_live_unit",
            sqlite_where=sa.text(OLD_LIVE),
            postgresql_where=sa.text(OLD_LIVE),
        )
        batch_op.add_column(sa.Column("business_number", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("filing_number", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("filing_submitted_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("filed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "filing_rejection_reason", sa.String(length=200), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column("filing_note", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_contract_orders_business_number"), ["business_number"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_contract_orders_filing_number"), ["filing_number"]
        )
        _live_index(batch_op, NEW_LIVE)
    op.execute(
        "UPDATE contract_orders SET business_number = contract_number, "
        "status = 'filing_pending', filing_submitted_at = completed_at "
        "WHERE status = 'signed'"
    )

    with op.batch_alter_table("escrow_contracts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("business_number", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column("contract_number", existing_type=sa.String(length=64), nullable=True)
    op.execute("UPDATE escrow_contracts SET business_number = contract_number")
    with op.batch_alter_table("escrow_contracts", schema=None) as batch_op:
        batch_op.alter_column("business_number", existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table("escrow_payment_notices", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_escrow_payment_notices_contract_id_kind"), ["contract_id", "kind"]
        )

    op.create_table(
        "contract_cancellations",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("applicant_party_ids", sa.JSON(), nullable=False),
        sa.Column("previous_status", sa.String(length=32), nullable=False),
        sa.Column("started_by", sa.String(length=100), nullable=False),
        sa.Column("started_by_citizen_id", sa.Uuid(), nullable=True),
        sa.Column("started_by_staff_id", sa.Uuid(), nullable=True),
        sa.Column("scene", sa.String(length=32), nullable=False),
        sa.Column("document_json", sa.Text(), nullable=False),
        sa.Column("document_hash", sa.String(length=64), nullable=False),
        sa.Column("decision_reason", sa.String(length=200), nullable=False),
        sa.Column("reviewed_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["contract_orders.id"],
            name=op.f("fk_contract_cancellations_order_id_contract_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_contract_cancellations_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["started_by_citizen_id"],
            ["citizens.id"],
            name=op.f("fk_contract_cancellations_started_by_citizen_id_citizens"),
        ),
        sa.ForeignKeyConstraint(
            ["started_by_staff_id"],
            ["staff_members.id"],
            name=op.f("fk_contract_cancellations_started_by_staff_id_staff_members"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"],
            ["staff_members.id"],
            name=op.f("fk_contract_cancellations_reviewed_by_staff_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_cancellations")),
        sa.UniqueConstraint("scene", name=op.f("uq_contract_cancellations_scene")),
    )
    with op.batch_alter_table("contract_cancellations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_cancellations_order_id"), ["order_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_contract_cancellations_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            "ix_contract_cancellations_status_created_at", ["status", "created_at"], unique=False
        )
        batch_op.create_index(
            "uq_contract_cancellations_open_order",
            ["order_id"],
            unique=True,
            sqlite_where=sa.text(OPEN_CANCELLATION),
            postgresql_where=sa.text(OPEN_CANCELLATION),
        )

    op.create_table(
        "cancellation_signatures",
        sa.Column("cancellation_id", sa.Uuid(), nullable=False),
        sa.Column("signer_key", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cancellation_id"],
            ["contract_cancellations.id"],
            name=op.f("fk_cancellation_signatures_cancellation_id_contract_cancellations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellation_signatures")),
        sa.UniqueConstraint(
            "cancellation_id",
            "signer_key",
            name=op.f("uq_cancellation_signatures_cancellation_id_signer_key"),
        ),
    )
    with op.batch_alter_table("cancellation_signatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cancellation_signatures_cancellation_id"),
            ["cancellation_id"],
            unique=False,
        )

    op.create_table(
        "cancellation_documents",
        sa.Column("cancellation_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cancellation_id"],
            ["contract_cancellations.id"],
            name=op.f("fk_cancellation_documents_cancellation_id_contract_cancellations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellation_documents")),
    )
    with op.batch_alter_table("cancellation_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cancellation_documents_cancellation_id"),
            ["cancellation_id"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("cancellation_documents")
    op.drop_table("cancellation_signatures")
    op.drop_table("contract_cancellations")
    with op.batch_alter_table("escrow_payment_notices", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_escrow_payment_notices_contract_id_kind"), type_="unique"
        )
    op.execute("DELETE FROM escrow_contracts WHERE contract_number IS NULL")
    with op.batch_alter_table("escrow_contracts", schema=None) as batch_op:
        batch_op.alter_column("contract_number", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("business_number")
    op.execute(
        "UPDATE contract_orders SET status = 'signed' WHERE status IN "
        "('filing_pending', 'filing_rejected', 'filed', 'cancellation_pending')"
    )
    op.execute("UPDATE contract_orders SET status = 'voided' WHERE status = 'cancelled'")
    with op.batch_alter_table("contract_orders", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_contract_orders_live_unit",
            sqlite_where=sa.text(NEW_LIVE),
            postgresql_where=sa.text(NEW_LIVE),
        )
        batch_op.drop_constraint(batch_op.f("uq_contract_orders_filing_number"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_contract_orders_business_number"), type_="unique")
        for column in (
            "reminded_at",
            "filing_note",
            "filing_rejection_reason",
            "filed_at",
            "filing_submitted_at",
            "filing_number",
            "business_number",
        ):
            batch_op.drop_column(column)
        _live_index(batch_op, OLD_LIVE)
