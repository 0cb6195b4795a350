"""Base classes for request and response bodies (msgspec Structs at the edges)."""

from __future__ import annotations

import msgspec


class RequestBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown fields are refused, never silently dropped."""


class ResponseBody(msgspec.Struct, kw_only=True):
    """A response body."""


class Page(ResponseBody):
    total: int
    limit: int
    offset: int
