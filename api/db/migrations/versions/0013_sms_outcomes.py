"""SMS outcomes (unknown after a timeout, receipts) and face checks on real providers

Neither SMS provider de-duplicates a send, so a message whose send timed out remembers
since when its outcome is unknown and the worker asks the provider before sending again.
Delivery receipts (the handset's) are recorded on the message; the provider's id is
indexed because receipts name it.

A face check keeps WeChat's verify_id (up to 256 characters), our serial number of the
check (WeChat's out_seq_no) and which SDK the client hands the token to.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(
            sa.Column("outcome_unknown_since", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("delivery_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_outbox_messages_provider_id", ["provider_id"], unique=False)
    with op.batch_alter_table("face_sessions") as batch:
        batch.alter_column(
            "biz_token", existing_type=sa.String(length=100), type_=sa.String(length=300),
            existing_nullable=False,
        )
        batch.add_column(
            sa.Column("reference", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column(
                "sdk", sa.String(length=32), nullable=False, server_default="tencent_faceid"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("face_sessions") as batch:
        batch.drop_column("sdk")
        batch.drop_column("reference")
        batch.alter_column(
            "biz_token", existing_type=sa.String(length=300), type_=sa.String(length=100),
            existing_nullable=False,
        )
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_index("ix_outbox_messages_provider_id")
        batch.drop_column("delivered_at")
        batch.drop_column("delivery_status")
        batch.drop_column("outcome_unknown_since")
