"""resale: orders a citizen makes for the home on their title, identity documents beyond
the resident card, title check tries, the city's resale supervised account

Orders may have no developer (a resale has a seller instead) and hold their title (one
live order per title); parties, citizens and title owners say which identity document
they use; cancellations of a resale are submitted by whoever started them; a supervised
account is a project's or the city's resale one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status NOT IN ('expired', 'voided', 'cancelled')"
LIVE_TITLE = f"title_id IS NOT NULL AND {LIVE}"
OLD_OPEN = "status IN ('awaiting_signatures', 'awaiting_seal', 'awaiting_review')"
NEW_OPEN = "status NOT IN ('approved', 'rejected', 'withdrawn')"


def _id_type() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id_type", sa.String(length=32), nullable=False, server_default="resident_id")


def upgrade() -> None:
    with op.batch_alter_table("contract_orders", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column("agent_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column("seller_citizen_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("title_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("funds_supervised", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("seller_account_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("transfer_registered_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("personal_data_purged_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_contract_orders_seller_citizen_id_citizens"),
            "citizens",
            ["seller_citizen_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_contract_orders_title_id_resale_titles"),
            "resale_titles",
            ["title_id"],
            ["id"],
        )
        batch_op.create_index(
            "uq_contract_orders_live_title",
            ["title_id"],
            unique=True,
            sqlite_where=sa.text(LIVE_TITLE),
            postgresql_where=sa.text(LIVE_TITLE),
        )
    for table in ("contract_parties", "citizens", "title_owners"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_id_type())
    with op.batch_alter_table("contract_cancellations", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.drop_index(
            "uq_contract_cancellations_open_order",
            sqlite_where=sa.text(OLD_OPEN),
            postgresql_where=sa.text(OLD_OPEN),
        )
        batch_op.create_index(
            "uq_contract_cancellations_open_order",
            ["order_id"],
            unique=True,
            sqlite_where=sa.text(NEW_OPEN),
            postgresql_where=sa.text(NEW_OPEN),
        )
    op.create_table(
        "title_checks",
        sa.Column("title_id", sa.Uuid(), nullable=False),
        sa.Column("citizen_id", sa.Uuid(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_title_checks_citizen_id_citizens")
        ),
        sa.ForeignKeyConstraint(
            ["title_id"], ["resale_titles.id"], name=op.f("fk_title_checks_title_id_resale_titles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_title_checks")),
    )
    with op.batch_alter_table("title_checks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_title_checks_title_id_checked_at", ["title_id", "checked_at"], unique=False
        )
    with op.batch_alter_table("escrow_supervised_accounts", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.alter_column("project_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(
            sa.Column("scope", sa.String(length=32), nullable=False, server_default="project")
        )
    with op.batch_alter_table("escrow_contracts", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column("payee_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM escrow_contracts WHERE company_id IS NULL")
    with op.batch_alter_table("escrow_contracts", schema=None) as batch_op:
        batch_op.drop_column("payee_encrypted")
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=False)
    op.execute("DELETE FROM escrow_supervised_accounts WHERE scope = 'resale'")
    with op.batch_alter_table("escrow_supervised_accounts", schema=None) as batch_op:
        batch_op.drop_column("scope")
        batch_op.alter_column("project_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_table("title_checks")
    op.execute(
        "DELETE FROM cancellation_signatures WHERE cancellation_id IN "
        "(SELECT id FROM contract_cancellations WHERE company_id IS NULL)"
    )
    op.execute(
        "DELETE FROM cancellation_documents WHERE cancellation_id IN "
        "(SELECT id FROM contract_cancellations WHERE company_id IS NULL)"
    )
    op.execute("DELETE FROM contract_cancellations WHERE company_id IS NULL")
    with op.batch_alter_table("contract_cancellations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_contract_cancellations_open_order",
            sqlite_where=sa.text(NEW_OPEN),
            postgresql_where=sa.text(NEW_OPEN),
        )
        batch_op.create_index(
            "uq_contract_cancellations_open_order",
            ["order_id"],
            unique=True,
            sqlite_where=sa.text(OLD_OPEN),
            postgresql_where=sa.text(OLD_OPEN),
        )
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=False)
    for table in ("title_owners", "citizens", "contract_parties"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("id_type")
    for table in ("contract_events", "contract_signatures", "contract_parties"):
        op.execute(
            f"DELETE FROM {table} WHERE order_id IN "  # noqa: S608  (fixed table names)
            "(SELECT id FROM contract_orders WHERE company_id IS NULL)"
        )
    op.execute("DELETE FROM contract_orders WHERE company_id IS NULL")
    with op.batch_alter_table("contract_orders", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_contract_orders_live_title",
            sqlite_where=sa.text(LIVE_TITLE),
            postgresql_where=sa.text(LIVE_TITLE),
        )
        batch_op.drop_constraint(
            batch_op.f("fk_contract_orders_title_id_resale_titles"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_contract_orders_seller_citizen_id_citizens"), type_="foreignkey"
        )
        batch_op.drop_column("personal_data_purged_at")
        batch_op.drop_column("transfer_registered_at")
        batch_op.drop_column("seller_account_encrypted")
        batch_op.drop_column("funds_supervised")
        batch_op.drop_column("title_id")
        batch_op.drop_column("seller_citizen_id")
        batch_op.alter_column("agent_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("company_id", existing_type=sa.Uuid(), nullable=False)
