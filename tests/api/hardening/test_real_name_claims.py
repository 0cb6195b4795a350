"""Finding 3 of the outside review: a fresh account posting another person's name and ID
number got real_name without a face check, and the real owner then met 409
id_number_taken for ever; 409 versus 422 also told which numbers were registered. A
number is reserved only once a face check passes for it; real-name answers alike."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

from api.core.clock import MovableClock
from api.db.migrate import upgrade
from api.settings import Settings
from tests.api.contracts.helpers import ZHANG, finish_face_page
from tests.api.identity.helpers import agree_to_pi_notice, bearer, login_phone, me

SQUATTER = "13912349901"
SECOND_ACCOUNT = "13912349902"


async def _real_name(client: httpx.AsyncClient, token: str) -> httpx.Response:
    await agree_to_pi_notice(client, token)
    return await client.post(
        "/api/v1/me/real-name",
        json={"name": ZHANG.name, "id_number": ZHANG.id_number},
        headers=bearer(token),
    )


async def _face(client: httpx.AsyncClient, token: str) -> dict[str, object]:
    face = (await client.post("/api/v1/me/face-sessions", headers=bearer(token))).json()
    await finish_face_page(client, face["url"])
    result = await client.get(f"/api/v1/me/face-sessions/{face['id']}", headers=bearer(token))
    assert result.status_code == 200, result.text
    return result.json()


def _shape(response: httpx.Response) -> tuple[int, str | None, str | None]:
    body = response.json()
    return response.status_code, body.get("code"), body.get("identity_level")


async def test_a_claim_without_a_face_check_does_not_lock_out_the_owner(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    squatter = await login_phone(mock_client, SQUATTER)
    claimed = await _real_name(mock_client, squatter)
    assert claimed.status_code == 200  # the identity provider says name and number agree
    assert (await me(mock_client, squatter))["identity_level"] == "real_name"

    # The owner is not refused, and passes the face check: the number is theirs.
    clock.advance(timedelta(minutes=1))
    owner = await login_phone(mock_client, ZHANG.phone)
    mine = await _real_name(mock_client, owner)
    assert _shape(mine) == _shape(claimed)
    assert (await _face(mock_client, owner))["identity_level"] == "face_verified"


async def test_real_name_answers_alike_whether_or_not_the_number_is_held(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    fresh = await login_phone(mock_client, SQUATTER)
    unheld = await _real_name(mock_client, fresh)
    clock.advance(timedelta(minutes=1))
    owner = await login_phone(mock_client, ZHANG.phone)
    await _real_name(mock_client, owner)
    assert (await _face(mock_client, owner))["identity_level"] == "face_verified"
    clock.advance(timedelta(minutes=1))
    probe = await login_phone(mock_client, SECOND_ACCOUNT)
    held = await _real_name(mock_client, probe)
    assert _shape(held) == _shape(unheld) == (200, None, "real_name")


async def test_one_identity_one_account_is_kept_at_the_face_check(
    mock_client: httpx.AsyncClient, clock: MovableClock
) -> None:
    owner = await login_phone(mock_client, ZHANG.phone)
    await _real_name(mock_client, owner)
    assert (await _face(mock_client, owner))["identity_level"] == "face_verified"
    # The same person's second account passes a face check too, but cannot take the number.
    clock.advance(timedelta(minutes=1))
    second = await login_phone(mock_client, SECOND_ACCOUNT)
    await _real_name(mock_client, second)
    outcome = await _face(mock_client, second)
    assert outcome["status"] == "failed" and outcome["reason"] == "id_number_taken"
    assert outcome["identity_level"] == "real_name"
    assert (await me(mock_client, owner))["identity_level"] == "face_verified"


def test_the_migration_frees_numbers_held_without_a_face_check(tmp_path: Path) -> None:
    """0018 turns every reservation into a claim and keeps only the face-verified ones (on
    a SQLite file of its own, whatever database the suite runs on)."""
    settings = Settings(data_dir=tmp_path, secret_key="x" * 40)
    upgrade(settings, "0017")
    db = sqlite3.connect(tmp_path / "wangqian.db")
    for n, level in enumerate(("face_verified", "real_name")):
        db.execute(
            "INSERT INTO citizens (id, phone, name, id_type, id_number_index, identity_level,"
            " created_at) VALUES (?, ?, '张三', 'resident_id', ?, ?, '2026-11-29 00:00:00')",
            (uuid.uuid4().hex, f"1390000990{n}", f"index-{n}", level),
        )
    db.commit()
    upgrade(settings)
    rows = db.execute(
        "SELECT identity_level, id_number_index, id_number_claim_index FROM citizens"
        " ORDER BY phone_masked"
    ).fetchall()
    db.close()
    assert rows == [
        ("face_verified", "index-0", "index-0"),
        ("real_name", None, "index-1"),
    ]
