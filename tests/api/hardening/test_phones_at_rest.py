"""Finding 11 of the outside review: phone numbers sat in clear in six tables (citizens,
staff members, contract parties, outbox messages, SMS codes and their send history).
They are now a keyed index where rows are found by phone, encrypted where the number is
read back, and masked where it is shown; migration 0023 converts what is already stored."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import MovableClock
from api.core.keys import (
    CITIZEN_PHONE,
    PARTY_PHONE,
    RECIPIENT_PHONE,
    STAFF_PHONE,
    ServiceKeys,
)
from api.db.engine import Database
from api.db.migrate import downgrade, upgrade
from api.demo import PEOPLE
from api.settings import Settings
from api.tables import metadata
from signing.pii import mask_phone
from tests.api.contracts.helpers import (
    LI,
    ZHANG,
    create,
    demo,
    face_verified,
    order_body,
    pay_notice,
    scan,
    seal,
    sign,
)
from tests.api.identity.helpers import bearer, login_phone, me, send_code

STRANGER = "13600000777"  # asks for a login code and never uses it
TYPED = "13700000321"  # typed by the agent for a buyer who then binds her own phone


async def _phones_in_clear(database: Database, phones: set[str]) -> list[str]:
    """Every text cell of every table that holds one of ``phones``, as table.column."""
    found = []
    async with database.reader() as reader:
        for table in metadata.sorted_tables:
            texts = [c for c in table.columns if isinstance(c.type, String | Text)]
            if not texts:
                continue
            for row in await reader.execute(select(*texts)):
                for column, value in zip(texts, row, strict=True):
                    if isinstance(value, str) and any(phone in value for phone in phones):
                        found.append(f"{table.name}.{column.name}")
    return sorted(set(found))


async def test_no_phone_number_is_stored_in_clear_after_a_whole_contract(
    mock_client: httpx.AsyncClient,
    session: AsyncSession,
    keys: ServiceKeys,
    clock: MovableClock,
    database: Database,
) -> None:
    d = await demo(mock_client, session, keys, clock)
    body = order_body(d.units["201"], ZHANG, LI)
    body["buyers"][0]["phone"] = TYPED
    created = await create(mock_client, d.agent, body)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    issued = await mock_client.post(f"/api/v1/contracts/{order_id}/issue", headers=bearer(d.agent))
    assert issued.status_code == 200, issued.text
    await pay_notice(mock_client, d.agent, order_id, "deposit")
    for person in (ZHANG, LI):
        token = await face_verified(mock_client, person)
        assert (await scan(mock_client, token, issued.json()["scene"])).status_code == 200
        signed, _ = await sign(mock_client, token, order_id, person.phone)
        assert signed.status_code == 200, signed.text
    sealed = await seal(mock_client, d, order_id)
    assert sealed.status_code == 200, sealed.text
    await send_code(mock_client, STRANGER)

    people = {p.phone for p in PEOPLE} | {ZHANG.phone, LI.phone, STRANGER, TYPED}
    assert await _phones_in_clear(database, people) == []

    # Found again by the keyed index: the same account, the masked phone shown.
    clock.advance(timedelta(minutes=2))  # past the resend interval of her signing code
    again = await login_phone(mock_client, ZHANG.phone)
    profile = await me(mock_client, again)
    assert profile["phone_masked"] == mask_phone(ZHANG.phone)
    order = await mock_client.get(f"/api/v1/contracts/{order_id}", headers=bearer(d.agent))
    masked = {p["phone_masked"] for p in order.json()["parties"]}
    # Zhang bound her own phone at scan: the one the agent typed is gone from the order.
    assert masked == {mask_phone(ZHANG.phone), mask_phone(LI.phone)}


def _insert(db: sqlite3.Connection, table: str, values: dict[str, object]) -> str:
    """A row with ``values``, every other required column filled by its type; its id."""
    filler = {"CHAR(32)": None, "INTEGER": 0, "BIGINT": 0, "BOOLEAN": 0, "TEXT": "{}"}
    row: dict[str, object] = {"id": uuid.uuid4().hex}
    for name, kind, required, default in db.execute(
        'SELECT name, type, "notnull", dflt_value FROM pragma_table_info(?)', (table,)
    ):
        if required and default is None and name not in row:
            row[name] = filler.get(kind, "2026-11-29 00:00:00" if "DATE" in kind else "x")
    row.update(values)
    names, marks = ", ".join(row), ", ".join("?" for _ in row)
    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))  # noqa: S608 (our own table names)
    return str(row["id"])


def _rows_at_0022(db: sqlite3.Connection) -> None:
    """Rows as revision 0022 stored them, a phone in clear in each."""
    _insert(db, "citizens", {"phone": ZHANG.phone, "identity_level": "none"})
    _insert(db, "citizens", {"phone": None, "identity_level": "none"})
    _insert(db, "staff_members", {"phone": "13800000001", "role": "sales_agent"})
    company = _insert(db, "companies", {})
    project = _insert(db, "projects", {"company_id": company})
    building = _insert(db, "buildings", {"project_id": project})
    unit = _insert(db, "units", {"building_id": building})
    order = _insert(
        db,
        "contract_orders",
        {"project_id": project, "building_id": building, "unit_id": unit, "company_id": company},
    )
    for position, phone in enumerate((LI.phone, "")):  # "": a purged expired order's party
        _insert(
            db,
            "contract_parties",
            {
                "order_id": order,
                "position": position,
                "id_number_index": str(position),
                "phone": phone,
            },
        )
    _insert(
        db,
        "outbox_messages",
        {"dedupe_key": f"BK-1:arrived:{LI.phone}", "recipient_phone": LI.phone},
    )
    _insert(db, "otp_challenges", {"purpose": "login", "subject": STRANGER, "phone": STRANGER})
    _insert(db, "sms_sends", {"phone": STRANGER})
    db.commit()


def test_migration_0023_converts_stored_phones_and_back(tmp_path: Path) -> None:
    """On a SQLite file of its own, whatever database the suite runs on."""
    settings = Settings(data_dir=tmp_path, secret_key="k" * 40)
    keys = ServiceKeys.from_master(settings.master_secret())
    upgrade(settings, "0022")
    db = sqlite3.connect(tmp_path / "wangqian.db")
    _rows_at_0022(db)
    upgrade(settings)

    def one(query: str) -> tuple[object, ...]:
        return db.execute(query).fetchone()

    index, token, masked = one(
        "SELECT phone_index, phone_encrypted, phone_masked FROM citizens "
        "WHERE phone_index IS NOT NULL"
    )
    assert index == keys.phone_index(ZHANG.phone) and masked == mask_phone(ZHANG.phone)
    assert keys.phone(str(token), field=CITIZEN_PHONE) == ZHANG.phone
    assert one("SELECT phone_index FROM citizens WHERE phone_index IS NULL") == (None,)
    index, token = one("SELECT phone_index, phone_encrypted FROM staff_members")
    assert index == keys.phone_index("13800000001")
    assert keys.phone(str(token), field=STAFF_PHONE) == "13800000001"
    parties = db.execute(
        "SELECT phone_encrypted, phone_masked FROM contract_parties ORDER BY position"
    ).fetchall()
    assert keys.phone(parties[0][0], field=PARTY_PHONE) == LI.phone
    assert parties[1] == ("", "")
    key, index, token = one(
        "SELECT dedupe_key, recipient_phone_index, recipient_phone_encrypted FROM outbox_messages"
    )
    assert key == f"BK-1:arrived:{keys.phone_index(LI.phone)}"
    assert index == keys.phone_index(LI.phone)
    assert keys.phone(str(token), field=RECIPIENT_PHONE) == LI.phone
    stranger = keys.phone_index(STRANGER)
    assert one("SELECT subject, phone_index FROM otp_challenges") == (stranger, stranger)
    assert one("SELECT phone_index FROM sms_sends") == (stranger,)
    dump = "\n".join(db.iterdump())
    assert not [p for p in (ZHANG.phone, LI.phone, STRANGER, "13800000001") if p in dump]

    # Back down: the numbers decrypted into their columns (codes and sends are dropped:
    # only their index was kept).
    db.close()
    downgrade(settings, "0022")
    db = sqlite3.connect(tmp_path / "wangqian.db")
    assert one("SELECT phone FROM citizens WHERE phone IS NOT NULL") == (ZHANG.phone,)
    assert one("SELECT phone FROM staff_members") == ("13800000001",)
    assert one("SELECT dedupe_key, recipient_phone FROM outbox_messages") == (
        f"BK-1:arrived:{LI.phone}",
        LI.phone,
    )
    assert one("SELECT count(*) FROM otp_challenges") == (0,)
    db.close()
