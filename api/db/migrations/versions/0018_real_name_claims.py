"""real-name claims reserve nothing: an account's document number is reserved (the unique
``id_number_index``) only once a face check passed for it; what real-name records is a
claim (``id_number_claim_index``). Accounts that never passed a face check let go of the
numbers they hold, so a number claimed by someone else returns to its owner.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("citizens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id_number_claim_index", sa.String(length=64), nullable=True))
    op.execute("UPDATE citizens SET id_number_claim_index = id_number_index")
    op.execute("UPDATE citizens SET id_number_index = NULL WHERE identity_level <> 'face_verified'")


def downgrade() -> None:
    # Claims become reservations again where no face-verified account holds the number.
    op.execute(
        "UPDATE citizens SET id_number_index = id_number_claim_index "
        "WHERE id_number_index IS NULL AND id_number_claim_index IS NOT NULL "
        "AND id_number_claim_index NOT IN "
        "(SELECT id_number_index FROM citizens WHERE id_number_index IS NOT NULL)"
    )
    with op.batch_alter_table("citizens", schema=None) as batch_op:
        batch_op.drop_column("id_number_claim_index")
