"""The hash chain of an order's audit events, the part of an evidence bundle that says
what happened to a contract and in which order.

Each event's ``hash`` is the SHA-256 of the canonical JSON of its index, ``previous_hash``
and ``payload``, and ``previous_hash`` is the preceding event's hash or, for the first
event, the order's genesis value (so a chain cannot be moved to another order). The app
appends events one by one (:func:`next_event`); :func:`verify_event_chain` says which
event of a chain was changed, removed or inserted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from signing.canonical import canonical_json, sha256_hex
from signing.checks import Check

EVENT_CHAIN_FORMAT = "wangqian.audit-events/v1"

_EVENT_FIELDS = frozenset({"index", "previous_hash", "payload", "hash"})


def genesis_hash(order_id: str) -> str:
    """The ``previous_hash`` of an order's first audit event."""
    return sha256_hex(canonical_json({"chain": EVENT_CHAIN_FORMAT, "order_id": order_id}))


def event_hash(index: int, previous_hash: str, payload: Mapping[str, Any]) -> str:
    return sha256_hex(
        canonical_json({"index": index, "previous_hash": previous_hash, "payload": dict(payload)})
    )


def next_event(
    order_id: str, previous: Mapping[str, Any] | None, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The chained event that follows ``previous`` (None for the first event of an order)."""
    index = 0 if previous is None else int(previous["index"]) + 1
    previous_hash = genesis_hash(order_id) if previous is None else str(previous["hash"])
    # Round-trip through canonical JSON so the stored payload is exactly what was hashed.
    frozen_payload = json_copy(payload)
    return {
        "index": index,
        "previous_hash": previous_hash,
        "payload": frozen_payload,
        "hash": event_hash(index, previous_hash, frozen_payload),
    }


def chain_events(order_id: str, payloads: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Hash-chain an order's audit event payloads (dicts of JSON values), oldest first."""
    events: list[dict[str, Any]] = []
    for payload in payloads:
        events.append(next_event(order_id, events[-1] if events else None, payload))
    return events


def json_copy(value: Any) -> Any:
    """``value`` as canonical JSON reads it back, so what is stored is what was hashed."""
    return json.loads(canonical_json(value))


def verify_event_chain(order_id: str, events: Any) -> list[Check]:
    """Checks for an event list: one failed check per broken event, or one passing check."""
    if not isinstance(events, list):
        return [Check("events", False, "the audit events are not a list")]
    failures: list[Check] = []
    expected_previous = genesis_hash(order_id)
    for position, event in enumerate(events):
        name = f"events[{position}]"
        label = f"audit event #{position}"
        if not isinstance(event, Mapping) or set(event) != _EVENT_FIELDS:
            failures.append(
                Check(
                    name,
                    False,
                    f"{label} does not have exactly index, previous_hash, payload, hash",
                )
            )
            expected_previous = event.get("hash") if isinstance(event, Mapping) else None
            continue
        if event["index"] != position or isinstance(event["index"], bool):
            failures.append(
                Check(f"{name}.index", False, f"{label} carries index {event['index']!r}")
            )
        if event["previous_hash"] != expected_previous:
            which = "the genesis value" if position == 0 else f"event #{position - 1}'s hash"
            failures.append(
                Check(
                    f"{name}.previous_hash",
                    False,
                    f"{label}: previous_hash is not {which} (an event was changed, removed "
                    "or inserted before it)",
                )
            )
        try:
            recomputed = event_hash(event["index"], event["previous_hash"], event["payload"])
        except (TypeError, ValueError) as error:
            failures.append(Check(f"{name}.hash", False, f"{label} cannot be hashed: {error}"))
        else:
            if recomputed != event["hash"]:
                failures.append(
                    Check(
                        f"{name}.hash",
                        False,
                        f"{label}: hash does not match its content (its payload, index, "
                        "previous hash or the hash itself was changed)",
                    )
                )
        expected_previous = event["hash"]
    if failures:
        return failures
    return [Check("events", True, f"{len(events)} audit events, hash chain intact")]
