"""Public contract verification (合同查询): anyone with a contract's number (or its filing
number) and password learns whether it is genuine and sees its status, its filing, its flat
and its signing times."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts.reads import genuine_contract
from api.core.keys import ServiceKeys
from api.public.schemas import VerifiedUnit, VerifyAnswer
from api.register.queries import format_area
from signing.canonical import format_utc


async def verify_contract(
    session: AsyncSession, keys: ServiceKeys, *, number: str, password: str
) -> VerifyAnswer:
    """Genuine or not; the same answer for an unknown number and a wrong password."""
    number = number.strip().upper()
    found = await genuine_contract(session, keys, number=number, password=password)
    if found is None:
        return VerifyAnswer(genuine=False, contract_number=number)
    unit = found.terms.unit
    return VerifyAnswer(
        genuine=True,
        contract_number=found.contract_number,
        status=found.status,
        filing_number=found.filing_number,
        filed_at=found.filed_at,
        unit=VerifiedUnit(
            id=found.unit_id,
            project=unit.project,
            building=unit.building,
            room_no=unit.room_no,
            address=unit.address,
            building_area=format_area(unit.building_area_units),
            use=unit.use,
        ),
        company=found.terms.developer.name if found.terms.developer else None,
        parties=[{"role": role, "name": name} for role, name in found.parties],
        document_hash=found.document_hash,
        signatures=[
            {"role": role, "name": name, "signed_at": format_utc(signed_at)}
            for role, name, signed_at in found.signatures
        ],
        completed_at=found.completed_at,
    )
