"""The platform's time-stamping authority (RFC 3161): what it grants, what it refuses,
and how its tokens verify against the root."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import algos, tsp
from cryptography.hazmat.primitives.serialization import Encoding

from signing.ca import PlatformCA
from signing.tsa import (
    POLICY_OID,
    TimeStampAuthority,
    TransportTimeStamper,
    response_status,
    token_time,
    verify_token,
)
from tests.signing.helpers import NOW, new_ca


@pytest.fixture
def ca(tmp_path: Path) -> PlatformCA:
    return new_ca(tmp_path / "ca")


def _request(digest: bytes, algorithm: str = "sha256", **extra: object) -> bytes:
    imprint = tsp.MessageImprint(
        {
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": algorithm}),
            "hashed_message": digest,
        }
    )
    return tsp.TimeStampReq({"version": 1, "message_imprint": imprint, **extra}).dump()


def _status(answer: bytes) -> tuple[str, set[str]]:
    status, fail_info, _ = response_status(answer)
    return status, fail_info


def test_a_token_stamps_the_data_at_the_clock_time(ca: PlatformCA) -> None:
    stamper = TransportTimeStamper(TimeStampAuthority.of(ca).transport(lambda: NOW))
    token = asyncio.run(stamper.stamp(b"the signature bytes"))
    assert token_time(token) == NOW
    result = verify_token(token, b"the signature bytes", ca.root_certificate)
    assert result.ok and result.time == NOW
    other = verify_token(token, b"other bytes", ca.root_certificate)
    assert "token.imprint" in [c.name for c in other.checks if not c.ok]


def test_a_foreign_root_does_not_trust_the_token(ca: PlatformCA, tmp_path: Path) -> None:
    stamper = TransportTimeStamper(TimeStampAuthority.of(ca).transport(lambda: NOW))
    token = asyncio.run(stamper.stamp(b"x"))
    stranger = new_ca(tmp_path / "other", org_name="Other Platform")
    result = verify_token(token, b"x", stranger.root_certificate)
    assert not result.ok and "token.trusted" in [c.name for c in result.checks if not c.ok]
    assert not verify_token(b"garbage", b"x", ca.root_certificate).ok


def test_what_the_authority_refuses(ca: PlatformCA) -> None:
    authority = TimeStampAuthority.of(ca)
    digest = hashlib.sha256(b"x").digest()
    granted = authority.respond(_request(digest, cert_req=True), NOW)
    assert _status(granted) == ("granted", set())
    token = tsp.TimeStampResp.load(granted)["time_stamp_token"]
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["policy"].native == POLICY_OID and info["gen_time"].native == NOW
    assert len(token["content"]["certificates"]) == 2  # the TSA and its issuing CA
    # The TSA certificate is named in the signed attributes (RFC 5035), in every token.
    for answer in (granted, authority.respond(_request(digest), NOW)):
        signed = tsp.TimeStampResp.load(answer)["time_stamp_token"]["content"]
        [signer] = signed["signer_infos"]
        [named] = [
            a["values"][0]["certs"][0]
            for a in signer["signed_attrs"]
            if a["type"].native == "signing_certificate_v2"
        ]
        assert named["hash_algorithm"]["algorithm"].native == "sha256"
        assert named["cert_hash"].native == hashlib.sha256(
            authority.certificate.public_bytes(Encoding.DER)
        ).digest()
    refusals = {
        "sha1": (_request(hashlib.sha1(b"x").digest(), "sha1"), {"bad_alg"}),  # noqa: S324
        "short": (_request(digest[:20]), {"bad_data_format"}),
        "policy": (_request(digest, req_policy="1.2.3.4"), {"unaccepted_policy"}),
        "garbage": (b"\x30\x03\x02\x01\x01", {"bad_data_format"}),
        "huge": (b"\x30" + b"\x00" * 9000, {"bad_data_format"}),
    }
    for name, (request, fail) in refusals.items():
        assert _status(authority.respond(request, NOW)) == ("rejection", fail), name
    # An expired time-stamping certificate grants nothing.
    late = ca.tsa_certificate.not_valid_after_utc + timedelta(seconds=1)  # type: ignore[union-attr]
    assert _status(authority.respond(_request(digest), late))[0] == "rejection"
