"""Our request signing against the providers' own published worked examples."""

from __future__ import annotations

import hashlib

from api.identity.face_providers import cert_hash
from notifications import acs3, tc3

# Tencent Cloud "签名方法 v3" worked example: CVM DescribeInstances at 1551113065.
TC3_PAYLOAD = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'


def test_tc3_matches_tencents_published_example() -> None:
    canonical = tc3.canonical_request("cvm.tencentcloudapi.com", "DescribeInstances", TC3_PAYLOAD)
    assert canonical.endswith("35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    )
    to_sign = tc3.string_to_sign(1551113065, "cvm", canonical)
    assert to_sign.split("\n")[:3] == ["TC3-HMAC-SHA256", "1551113065", "2019-02-25/cvm/tc3_request"]
    # The published SecretKey is shown as 32 asterisks; its signature is the one published.
    header = tc3.authorization(
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******", "*" * 32, service="cvm",
        host="cvm.tencentcloudapi.com", action="DescribeInstances", timestamp=1551113065,
        payload=TC3_PAYLOAD,
    )
    assert header == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host;x-tc-action, "
        "Signature=10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    )
    parsed = tc3.parse_authorization(header)
    assert parsed is not None and (parsed.service, parsed.date) == ("cvm", "2019-02-25")


def test_tc3_dates_are_utc() -> None:
    # 1551113065 is 00:44 on 26 February in Beijing but still the 25th in UTC.
    assert tc3.utc_date(1551113065) == "2019-02-25"


def test_acs3_matches_alibabas_published_example() -> None:
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-version": "2014-05-26",
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-content-sha256": acs3.content_hash(),
    }
    query = {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
             "RegionId": "cn-shanghai"}
    header = acs3.authorization(
        "YourAccessKeyId", "YourAccessKeySecret", method="POST", path="/", query=query,
        headers=headers,
    )
    assert header == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )


def test_acs3_encodes_as_rfc3986() -> None:
    assert acs3.percent_encode("a b*c~d+é") == "a%20b%2Ac~d%2B%C3%A9"
    assert acs3.canonical_query({"b": "2", "a": "{\"k\":1}"}) == "a=%7B%22k%22%3A1%7D&b=2"


def test_wechat_cert_hash_matches_the_published_example() -> None:
    assert cert_hash("310101199801011234", "张三") == (
        "3c241f7ff324977aeb91f173bb2a7b06569e6fd784d5573db34a636d8671108b"
    )
