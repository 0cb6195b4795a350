"""register actions: permit changes, who granted, revoked, recorded and lifted, and the
register audit trail

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
# Issue 14 also adds 0008-0010 on another branch; the revisions are re-chained at merge.
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "status = 'open'"


def upgrade() -> None:
    with op.batch_alter_table("permits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("granted_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("revoked_by", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "revoke_document_no", sa.String(length=100), server_default="", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("revoke_reason", sa.String(length=500), server_default="", nullable=False)
        )
    with op.batch_alter_table("unit_restrictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("lifted_by", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("lift_authority", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("lift_document_no", sa.String(length=100), server_default="", nullable=False)
        )

    op.create_table(
        "permit_changes",
        sa.Column("permit_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "approved",
                "rejected",
                name="permit_change_status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("document_no", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("started_by", sa.Uuid(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["permit_id"], ["permits.id"], name=op.f("fk_permit_changes_permit_id_permits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permit_changes")),
    )
    with op.batch_alter_table("permit_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_permit_changes_permit_id"), ["permit_id"], unique=False
        )
        # At most one open change per permit, kept by the database.
        batch_op.create_index(
            "uq_permit_changes_open_permit",
            ["permit_id"],
            unique=True,
            sqlite_where=sa.text(_OPEN),
            postgresql_where=sa.text(_OPEN),
        )

    op.create_table(
        "permit_change_units",
        sa.Column("change_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["permit_changes.id"],
            name=op.f("fk_permit_change_units_change_id_permit_changes"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_permit_change_units_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("change_id", "unit_id", name=op.f("pk_permit_change_units")),
    )
    with op.batch_alter_table("permit_change_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_permit_change_units_unit_id"), ["unit_id"], unique=False
        )

    op.create_table(
        "register_audit",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "permit_granted",
                "permit_change_started",
                "permit_change_approved",
                "permit_change_rejected",
                "permit_revoked",
                "restriction_added",
                "restriction_lifted",
                name="register_action",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("actor_staff_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name_masked", sa.String(length=100), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("document_no", sa.String(length=100), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_register_audit_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_audit")),
    )
    with op.batch_alter_table("register_audit", schema=None) as batch_op:
        batch_op.create_index("ix_register_audit_project_at", ["project_id", "at"], unique=False)

    op.create_table(
        "register_audit_units",
        sa.Column("audit_id", sa.Uuid(), nullable=False),
        sa.Column("unit_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"],
            ["register_audit.id"],
            name=op.f("fk_register_audit_units_audit_id_register_audit"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_register_audit_units_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("audit_id", "unit_id", name=op.f("pk_register_audit_units")),
    )
    with op.batch_alter_table("register_audit_units", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_register_audit_units_unit_id"), ["unit_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("register_audit_units")
    op.drop_table("register_audit")
    op.drop_table("permit_change_units")
    op.drop_table("permit_changes")
    with op.batch_alter_table("unit_restrictions", schema=None) as batch_op:
        for column in ("lift_document_no", "lift_authority", "lifted_by", "created_by"):
            batch_op.drop_column(column)
    with op.batch_alter_table("permits", schema=None) as batch_op:
        for column in ("revoke_reason", "revoke_document_no", "revoked_by", "granted_by"):
            batch_op.drop_column(column)
