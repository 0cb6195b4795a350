"""Mock identity provider: two-element real-name check (二要素核验), name + ID number.

``POST /idcheck/verify {name, id_number}`` with ``Authorization: Bearer <key>`` answers
``{"result": "match" | "mismatch" | "not_found", "request_id"}`` against an in-memory
registry (the stand-in for the national ID database), preloaded from
`MockSettings.people`. ``POST /idcheck/people`` adds a person (demo and test helper).
The face mock consults the same registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from miniapp_mock._common import bearer_ok, new_id, normalize_id_number


class PersonRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    id_number: str


@dataclass
class IdRegistryState:
    key: str
    people: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.people = {normalize_id_number(k): v.strip() for k, v in self.people.items()}

    def add(self, id_number: str, name: str) -> None:
        self.people[normalize_id_number(id_number)] = name.strip()

    def check(self, name: str, id_number: str) -> str:
        known = self.people.get(normalize_id_number(id_number))
        if known is None:
            return "not_found"
        return "match" if known == name.strip() else "mismatch"


def _unauthorized() -> Response[dict[str, Any]]:
    return Response({"code": "UNAUTHORIZED", "message": "invalid api key"}, status_code=401)


@post("/idcheck/verify", status_code=200)
async def idcheck_verify(request: Request, data: JSONBody[PersonRequest],
                         id_registry: NamedDependency[IdRegistryState]) -> Response[dict[str, Any]]:
    if not bearer_ok(request, id_registry.key):
        return _unauthorized()
    return Response({"result": id_registry.check(data.name, data.id_number),
                     "request_id": new_id("idc-")})


@post("/idcheck/people", status_code=200)
async def idcheck_add_person(
    request: Request, data: JSONBody[PersonRequest], id_registry: NamedDependency[IdRegistryState]
) -> Response[dict[str, Any]]:
    """Register a person in the mock ID database (not part of a real provider's API)."""
    if not bearer_ok(request, id_registry.key):
        return _unauthorized()
    id_registry.add(data.id_number, data.name)
    return Response({"ok": True})


ROUTES = [idcheck_verify, idcheck_add_person]
