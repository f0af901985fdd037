"""Shared by the vision tests: a signing key and a trust store that trusts it."""

from __future__ import annotations

import pytest

from vision.signing import Signer, TrustStore


@pytest.fixture
def signer() -> Signer:
    return Signer.generate()


@pytest.fixture
def trust(signer: Signer) -> TrustStore:
    return TrustStore({signer.key_id: signer.public})
