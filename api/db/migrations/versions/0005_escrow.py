"""escrow: supervised accounts, payment notices, ledger, bank events, instructions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "escrow_bank_events",
        sa.Column("txn_id", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("account_number", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_bank_events")),
        sa.UniqueConstraint("txn_id", name=op.f("uq_escrow_bank_events_txn_id")),
    )
    op.create_table(
        "escrow_supervised_accounts",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("bank_name", sa.String(length=200), nullable=False),
        sa.Column("account_name", sa.String(length=200), nullable=False),
        sa.Column("account_number", sa.String(length=40), nullable=False),
        sa.Column("milestones", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "rejected",
                name="escrow_account_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.Uuid(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_reason", sa.String(length=500), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_escrow_supervised_accounts_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_escrow_supervised_accounts_project_id_projects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_supervised_accounts")),
        sa.UniqueConstraint(
            "account_number", name=op.f("uq_escrow_supervised_accounts_account_number")
        ),
    )
    with op.batch_alter_table("escrow_supervised_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escrow_supervised_accounts_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_escrow_supervised_accounts_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "escrow_instructions",
        sa.Column(
            "kind",
            sa.Enum("refund", "release", name="escrow_instr_kind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("supervised_account_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("milestone", sa.String(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "approved",
                "rejected",
                "completed",
                name="escrow_instr_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.Uuid(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("bank_event_id", sa.Uuid(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_escrow_instructions_amount_positive")),
        sa.ForeignKeyConstraint(
            ["bank_event_id"],
            ["escrow_bank_events.id"],
            name=op.f("fk_escrow_instructions_bank_event_id_escrow_bank_events"),
        ),
        sa.ForeignKeyConstraint(
            ["supervised_account_id"],
            ["escrow_supervised_accounts.id"],
            name=op.f("fk_escrow_instructions_supervised_account_id_escrow_supervised_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_instructions")),
    )
    with op.batch_alter_table("escrow_instructions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_escrow_instructions_account_status",
            ["supervised_account_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_escrow_instructions_contract_id"), ["contract_id"], unique=False
        )

    op.create_table(
        "escrow_ledger_accounts",
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "bank_clearing",
                "supervised",
                "contract",
                "developer_payouts",
                "buyer_refunds",
                "suspense",
                name="escrow_ledger_kind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "side",
            sa.Enum("debit", "credit", name="escrow_side", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("guarded", sa.Boolean(), nullable=False),
        sa.Column("supervised_account_id", sa.Uuid(), nullable=True),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["supervised_account_id"],
            ["escrow_supervised_accounts.id"],
            name=op.f("fk_escrow_ledger_accounts_supervised_account_id_escrow_supervised_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_ledger_accounts")),
        sa.UniqueConstraint("code", name=op.f("uq_escrow_ledger_accounts_code")),
    )
    with op.batch_alter_table("escrow_ledger_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escrow_ledger_accounts_supervised_account_id"),
            ["supervised_account_id"],
            unique=False,
        )

    op.create_table(
        "escrow_contracts",
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("contract_number", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("supervised_account_id", sa.Uuid(), nullable=False),
        sa.Column("ledger_account_id", sa.Uuid(), nullable=False),
        sa.Column("estate", sa.String(length=200), nullable=False),
        sa.Column("building", sa.String(length=100), nullable=False),
        sa.Column("room", sa.String(length=32), nullable=False),
        sa.Column("buyers_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_escrow_contracts_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_account_id"],
            ["escrow_ledger_accounts.id"],
            name=op.f("fk_escrow_contracts_ledger_account_id_escrow_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_escrow_contracts_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["supervised_account_id"],
            ["escrow_supervised_accounts.id"],
            name=op.f("fk_escrow_contracts_supervised_account_id_escrow_supervised_accounts"),
        ),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_escrow_contracts")),
    )
    with op.batch_alter_table("escrow_contracts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escrow_contracts_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_escrow_contracts_supervised_account_id"),
            ["supervised_account_id"],
            unique=False,
        )

    op.create_table(
        "escrow_payment_notices",
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "deposit", "down_payment", name="escrow_notice_kind", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("due_fen", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("due_fen > 0", name=op.f("ck_escrow_payment_notices_due_positive")),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["escrow_contracts.contract_id"],
            name=op.f("fk_escrow_payment_notices_contract_id_escrow_contracts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_payment_notices")),
        sa.UniqueConstraint("reference", name=op.f("uq_escrow_payment_notices_reference")),
    )
    with op.batch_alter_table("escrow_payment_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escrow_payment_notices_contract_id"), ["contract_id"], unique=False
        )

    op.create_table(
        "escrow_transfers",
        sa.Column("debit_account_id", sa.Uuid(), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("bank_event_id", sa.Uuid(), nullable=True),
        sa.Column("notice_id", sa.Uuid(), nullable=True),
        sa.Column("instruction_id", sa.Uuid(), nullable=True),
        sa.Column("corrects_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_escrow_transfers_amount_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_escrow_transfers_two_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["bank_event_id"],
            ["escrow_bank_events.id"],
            name=op.f("fk_escrow_transfers_bank_event_id_escrow_bank_events"),
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["escrow_ledger_accounts.id"],
            name=op.f("fk_escrow_transfers_credit_account_id_escrow_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["escrow_ledger_accounts.id"],
            name=op.f("fk_escrow_transfers_debit_account_id_escrow_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["instruction_id"],
            ["escrow_instructions.id"],
            name=op.f("fk_escrow_transfers_instruction_id_escrow_instructions"),
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"],
            ["escrow_payment_notices.id"],
            name=op.f("fk_escrow_transfers_notice_id_escrow_payment_notices"),
        ),
        sa.ForeignKeyConstraint(
            ["corrects_transfer_id"],
            ["escrow_transfers.id"],
            name=op.f("fk_escrow_transfers_corrects_transfer_id_escrow_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_transfers")),
        sa.UniqueConstraint(
            "corrects_transfer_id", name=op.f("uq_escrow_transfers_corrects_transfer_id")
        ),
    )
    with op.batch_alter_table("escrow_transfers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escrow_transfers_bank_event_id"), ["bank_event_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_escrow_transfers_credit_account_id"), ["credit_account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_escrow_transfers_debit_account_id"), ["debit_account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_escrow_transfers_instruction_id"), ["instruction_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_escrow_transfers_notice_id"), ["notice_id"], unique=False
        )

    _append_only_triggers()


def _append_only_triggers() -> None:
    """The ledger is append-only: the database itself refuses UPDATE and DELETE."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION escrow_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        op.execute(
            "CREATE TRIGGER escrow_transfers_append_only BEFORE UPDATE OR DELETE "
            "ON escrow_transfers FOR EACH ROW EXECUTE FUNCTION escrow_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER escrow_transfers_no_{action.lower()} BEFORE {action} "
            "ON escrow_transfers BEGIN "
            "SELECT RAISE(ABORT, 'escrow_transfers is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS escrow_transfers_append_only ON escrow_transfers")
        op.execute("DROP FUNCTION IF EXISTS escrow_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS escrow_transfers_no_update")
        op.execute("DROP TRIGGER IF EXISTS escrow_transfers_no_delete")
    with op.batch_alter_table("escrow_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escrow_transfers_notice_id"))
        batch_op.drop_index(batch_op.f("ix_escrow_transfers_instruction_id"))
        batch_op.drop_index(batch_op.f("ix_escrow_transfers_debit_account_id"))
        batch_op.drop_index(batch_op.f("ix_escrow_transfers_credit_account_id"))
        batch_op.drop_index(batch_op.f("ix_escrow_transfers_bank_event_id"))

    op.drop_table("escrow_transfers")
    with op.batch_alter_table("escrow_payment_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escrow_payment_notices_contract_id"))

    op.drop_table("escrow_payment_notices")
    with op.batch_alter_table("escrow_contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escrow_contracts_supervised_account_id"))
        batch_op.drop_index(batch_op.f("ix_escrow_contracts_company_id"))

    op.drop_table("escrow_contracts")
    with op.batch_alter_table("escrow_ledger_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escrow_ledger_accounts_supervised_account_id"))

    op.drop_table("escrow_ledger_accounts")
    with op.batch_alter_table("escrow_instructions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escrow_instructions_contract_id"))
        batch_op.drop_index("ix_escrow_instructions_account_status")

    op.drop_table("escrow_instructions")
    with op.batch_alter_table("escrow_supervised_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escrow_supervised_accounts_project_id"))
        batch_op.drop_index(batch_op.f("ix_escrow_supervised_accounts_company_id"))

    op.drop_table("escrow_supervised_accounts")
    op.drop_table("escrow_bank_events")
