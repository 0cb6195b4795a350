"""The typed terms are exactly what the signed document carries: no field added or lost
on the way from the sales office's form to the canonical document, and stored terms that
do not fit the type are refused rather than silently trimmed (that would change a hash)."""

from __future__ import annotations

import uuid

import httpx
import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.documents import freeze
from api.contracts.models import ContractOrder
from api.contracts.terms import ContractTerms, terms_of
from api.core.clock import MovableClock
from api.core.keys import ServiceKeys
from tests.api.contracts.helpers import LI, ZHANG, create_issued, demo
from tests.api.identity.helpers import bearer

UNIT_FIELDS = {
    "project",
    "building",
    "address",
    "unit",
    "room_no",
    "use",
    "building_area_units",
    "inner_area_units",
}


async def test_the_document_carries_the_terms_field_for_field(
    mock_client: httpx.AsyncClient, session: AsyncSession, keys: ServiceKeys, clock: MovableClock
) -> None:
    d = await demo(mock_client, session, keys, clock)
    issued = await create_issued(mock_client, d, "301", ZHANG, LI)
    order_id = issued["order"]["id"]
    document = (
        await mock_client.get(f"/api/v1/contracts/{order_id}/document", headers=bearer(d.agent))
    ).json()
    terms = document["document"]["terms"]
    assert set(terms) == {
        "contract_kind",
        "title",
        "unit",
        "developer",
        "price_fen",
        "payment_method",
        "payment_method_label",
        "deposit_fen",
        "down_payment_fen",
        "delivery_date",
        "parties",
    }
    assert set(terms["unit"]) == UNIT_FIELDS and terms["unit"]["room_no"] == "301"
    assert [p["role"] for p in terms["parties"]] == ["buyer", "buyer", "seal"]
    buyer, _, seal = terms["parties"]
    assert set(buyer) == {"role", "name", "id_type", "id_hash", "id_number_masked", "share"}
    assert buyer["name"] == ZHANG.name and buyer["share"] == "1/2"
    assert ZHANG.id_number not in document["canonical_json"]
    assert buyer["id_number_masked"] == ZHANG.id_number[:4] + "*" * 10 + ZHANG.id_number[-4:]
    assert set(seal) == {"role", "name", "credit_code"}
    assert seal["credit_code"] == terms["developer"]["credit_code"]

    # The stored terms decode into the type and render the very document that was hashed.
    order = await session.get(ContractOrder, uuid.UUID(order_id))
    assert order is not None
    again = freeze(order.template_id, terms_of(order), version=order.template_version)
    assert again.document_hash == document["document_hash"]


def test_terms_with_a_field_the_type_does_not_know_are_refused() -> None:
    order = ContractOrder(terms_json='{"contract_kind": "presale", "surprise": 1}')
    with pytest.raises(msgspec.ValidationError):
        terms_of(order)
    assert "surprise" not in ContractTerms.__struct_fields__
