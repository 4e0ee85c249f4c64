"""A key pair of the tests' own for signed API key announcements, and announcements signed with it.

Tests that publish key announcements themselves start their service with `PUBLIC_KEY`; the services `make up`
runs use the stack's pair instead (Stack.secrets).
"""

from __future__ import annotations

from typing import Any

from slm_shared.events import ApiKeyData
from slm_shared.signing import AnnouncementSigner, generate_signing_key

PRIVATE_KEY, PUBLIC_KEY = generate_signing_key()
SIGNER = AnnouncementSigner(PRIVATE_KEY)


def signed_key(tenant: str, key_id: str, key_hash: str = "0" * 64) -> ApiKeyData:
    return SIGNER.sign(ApiKeyData(key_id=key_id, tenant_id=tenant, key_hash=key_hash, status="active"))


def signed_key_json(tenant: str, key_id: str) -> dict[str, Any]:
    return signed_key(tenant, key_id).model_dump(mode="json")
