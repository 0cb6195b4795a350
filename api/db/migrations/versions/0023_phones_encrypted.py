"""phone numbers are no longer stored in clear: a keyed index where rows are found by
phone, encrypted where the number is read back, masked where it is shown

citizens and staff_members: ``phone_index`` (unique), ``phone_encrypted``, ``phone_masked``;
contract_parties: ``phone_encrypted``, ``phone_masked``; outbox_messages:
``recipient_phone_index``, ``recipient_phone_encrypted``, ``recipient_phone_masked`` (and a
phone inside a dedupe key becomes its index); otp_challenges and sms_sends: only
``phone_index`` (a login code's subject, which was the phone, becomes the index too, so a
login code outstanding during the upgrade is asked for again). The keys come from the
service's master secret, as the running service derives them (``api.core.keys``).

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-29
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from api.core.keys import (
    CITIZEN_PHONE,
    PARTY_PHONE,
    RECIPIENT_PHONE,
    STAFF_PHONE,
    ServiceKeys,
)
from api.settings import Settings

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Row = dict[str, Any]


def _keys() -> ServiceKeys:
    settings = context.config.attributes.get("settings") or Settings.from_env(
        database_url=context.config.get_main_option("sqlalchemy.url")
    )
    return ServiceKeys.from_master(settings.master_secret())


def _rewrite(table: str, read: Sequence[str], write: Callable[[Row], Row]) -> None:
    """Every row of ``table``: ``write`` gets the ``read`` columns and gives new values."""
    sample = write({name: "" for name in read})
    columns = {name: sa.column(name) for name in {*read, *sample}}
    target = sa.table(table, sa.column("id", sa.Uuid()), *columns.values())
    bind = op.get_bind()
    rows = bind.execute(sa.select(target.c.id, *(target.c[name] for name in read))).mappings()
    updates = [{"row_id": row["id"], **write(dict(row))} for row in rows.all()]
    if updates:
        bind.execute(
            target.update()
            .where(target.c.id == sa.bindparam("row_id", type_=sa.Uuid()))
            .values({name: sa.bindparam(name) for name in sample}),
            updates,
        )


def _add(table: str, *columns: tuple[str, int]) -> None:
    with op.batch_alter_table(table) as batch:
        for name, length in columns:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def upgrade() -> None:
    keys = _keys()

    def protected(phone: str | None, field: str, prefix: str = "phone_") -> Row:
        """The index, ciphertext and mask columns of ``phone`` (None for no phone)."""
        kept = keys.protect_phone(phone, field=field) if phone else None
        return {
            f"{prefix}index": kept and kept.index,
            f"{prefix}encrypted": kept and kept.encrypted,
            f"{prefix}masked": kept and kept.masked,
        }

    def person(field: str) -> Callable[[Row], Row]:
        return lambda row: protected(row["phone"], field)

    for table, field in (("citizens", CITIZEN_PHONE), ("staff_members", STAFF_PHONE)):
        _add(table, ("phone_index", 64), ("phone_encrypted", 200), ("phone_masked", 16))
        _rewrite(table, ["phone"], person(field))
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_phone", type_="unique")
            batch.drop_column("phone")
            batch.create_unique_constraint(f"uq_{table}_phone_index", ["phone_index"])
            if table == "staff_members":
                for name in ("phone_index", "phone_encrypted", "phone_masked"):
                    batch.alter_column(name, existing_type=sa.String(), nullable=False)

    _add("contract_parties", ("phone_encrypted", 200), ("phone_masked", 16))
    _rewrite(
        "contract_parties",
        ["phone"],
        lambda row: {
            # "" stays "": the personal data of an expired resale order was purged.
            name: value or ""
            for name, value in protected(row["phone"], PARTY_PHONE).items()
            if name != "phone_index"
        },
    )
    with op.batch_alter_table("contract_parties") as batch:
        batch.drop_column("phone")
        for name in ("phone_encrypted", "phone_masked"):
            batch.alter_column(name, existing_type=sa.String(), nullable=False)

    _add(
        "outbox_messages",
        ("recipient_phone_index", 64),
        ("recipient_phone_encrypted", 200),
        ("recipient_phone_masked", 16),
    )

    def recipient(row: Row) -> Row:
        phone = row["recipient_phone"]
        columns = protected(phone, RECIPIENT_PHONE, prefix="recipient_phone_")
        key = row["dedupe_key"]
        if phone:
            # Escrow's messages were unique per event and phone: the key named the phone.
            key = key.replace(phone, columns["recipient_phone_index"])[:255]
        return {**columns, "dedupe_key": key}

    _rewrite("outbox_messages", ["recipient_phone", "dedupe_key"], recipient)
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_index("ix_outbox_messages_recipient_sent")
        batch.drop_column("recipient_phone")
        batch.create_index(
            "ix_outbox_messages_recipient_sent", ["recipient_phone_index", "sent_at"]
        )

    _add("otp_challenges", ("phone_index", 64))
    _rewrite(
        "otp_challenges",
        ["phone", "subject"],
        lambda row: {
            "phone_index": keys.phone_index(row["phone"]),
            "subject": keys.phone_index(row["phone"])
            if row["subject"] == row["phone"]
            else row["subject"],
        },
    )
    with op.batch_alter_table("otp_challenges") as batch:
        batch.drop_column("phone")
        batch.alter_column("phone_index", existing_type=sa.String(), nullable=False)

    _add("sms_sends", ("phone_index", 64))
    _rewrite("sms_sends", ["phone"], lambda row: {"phone_index": keys.phone_index(row["phone"])})
    with op.batch_alter_table("sms_sends") as batch:
        batch.drop_index("ix_sms_sends_phone_sent_at")
        batch.drop_column("phone")
        batch.alter_column("phone_index", existing_type=sa.String(), nullable=False)
        batch.create_index("ix_sms_sends_phone_sent_at", ["phone_index", "sent_at"])


def downgrade() -> None:
    """Phones decrypted back into their columns. The send history and codes kept only the
    index, which cannot be turned back into a number: they are dropped (codes live
    minutes, the quota windows a day)."""
    keys = _keys()
    op.execute("DELETE FROM otp_challenges")
    op.execute("DELETE FROM sms_sends")
    with op.batch_alter_table("sms_sends") as batch:
        batch.drop_index("ix_sms_sends_phone_sent_at")
        batch.drop_column("phone_index")
        batch.add_column(sa.Column("phone", sa.String(length=16), nullable=False))
        batch.create_index("ix_sms_sends_phone_sent_at", ["phone", "sent_at"])
    with op.batch_alter_table("otp_challenges") as batch:
        batch.drop_column("phone_index")
        batch.add_column(sa.Column("phone", sa.String(length=16), nullable=False))

    _add("outbox_messages", ("recipient_phone", 20))

    def recipient(row: Row) -> Row:
        token = row["recipient_phone_encrypted"]
        phone = keys.phone(token, field=RECIPIENT_PHONE) if token else None
        key = row["dedupe_key"]
        if phone and row["recipient_phone_index"]:
            key = key.replace(row["recipient_phone_index"], phone)
        return {"recipient_phone": phone, "dedupe_key": key}

    _rewrite(
        "outbox_messages",
        ["recipient_phone_encrypted", "recipient_phone_index", "dedupe_key"],
        recipient,
    )
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_index("ix_outbox_messages_recipient_sent")
        for name in (
            "recipient_phone_index",
            "recipient_phone_encrypted",
            "recipient_phone_masked",
        ):
            batch.drop_column(name)
        batch.create_index("ix_outbox_messages_recipient_sent", ["recipient_phone", "sent_at"])

    _add("contract_parties", ("phone", 16))
    _rewrite(
        "contract_parties",
        ["phone_encrypted"],
        lambda row: {
            "phone": keys.phone(row["phone_encrypted"], field=PARTY_PHONE)
            if row["phone_encrypted"]
            else ""
        },
    )
    with op.batch_alter_table("contract_parties") as batch:
        batch.drop_column("phone_encrypted")
        batch.drop_column("phone_masked")
        batch.alter_column("phone", existing_type=sa.String(), nullable=False)

    for table, field in (("citizens", CITIZEN_PHONE), ("staff_members", STAFF_PHONE)):
        _add(table, ("phone", 16))
        _rewrite(
            table,
            ["phone_encrypted"],
            lambda row, field=field: {
                "phone": keys.phone(row["phone_encrypted"], field=field)
                if row["phone_encrypted"]
                else None
            },
        )
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_phone_index", type_="unique")
            for name in ("phone_index", "phone_encrypted", "phone_masked"):
                batch.drop_column(name)
            batch.create_unique_constraint(f"uq_{table}_phone", ["phone"])
            if table == "staff_members":
                batch.alter_column("phone", existing_type=sa.String(), nullable=False)
