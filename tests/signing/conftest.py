"""Fixtures for the signing tests: one platform CA and one evidence bundle per module."""

from __future__ import annotations

from typing import Any

import pytest

from signing.ca import PlatformCA
from tests.signing.helpers import make_bundle, new_ca


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PlatformCA:
    return new_ca(tmp_path_factory.mktemp("keystore"))


@pytest.fixture(scope="module")
def bundle(ca: PlatformCA) -> dict[str, Any]:
    return make_bundle(ca)
