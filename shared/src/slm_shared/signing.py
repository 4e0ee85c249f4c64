"""Signed API-key announcements: only intake can announce a key, every other service can check it.

Anyone who can write to `itsm.tenants.v1` could otherwise announce a key hash of their own for any tenant and
then read or rewrite that tenant's data on the sla-engine and reporting. Intake signs each `ApiKeyData` with an
Ed25519 private key only it holds (`INTAKE_KEY_SIGNING_KEY`); the other services hold only public keys
(`<PREFIX>_KEY_ANNOUNCEMENT_PUBLIC_KEYS`, several during a rotation) and ignore, and count, any announcement
whose signature does not verify under one of them. A verify-only key cannot forge, which an HMAC secret
shared with the verifiers could.

The signature covers every field of the announcement but the signature itself, in a canonical JSON form
behind a domain-separation prefix, so it cannot be moved to another key, tenant, status or set of scopes.
Keys travel as base64 of their 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

if TYPE_CHECKING:
    from slm_shared.events import ApiKeyData

SIGNED_PREFIX = b"slm.tenant.apikey.v1\n"


def signed_bytes(key: ApiKeyData) -> bytes:
    """The bytes a signature covers: the announcement without its signature, canonical JSON."""
    fields = key.model_dump(mode="json", exclude={"signature"})
    return SIGNED_PREFIX + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{what} is not base64") from error
    if len(raw) != 32:
        raise ValueError(f"{what} must be 32 bytes (base64 of a raw Ed25519 key), not {len(raw)}")
    return raw


class AnnouncementSigner:
    """Intake's half: signs an announcement with the private key."""

    def __init__(self, private_key_base64: str) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(_raw(private_key_base64, "the key signing key"))

    def sign(self, key: ApiKeyData) -> ApiKeyData:
        signature = self._key.sign(signed_bytes(key))
        return key.model_copy(update={"signature": base64.b64encode(signature).decode()})

    def public_key(self) -> str:
        return base64.b64encode(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


class AnnouncementVerifier:
    """The other services' half: an announcement counts only if one of the public keys verifies it."""

    def __init__(self, public_keys_base64: str) -> None:
        """`public_keys_base64`: comma-separated; more than one while the signing key is being rotated."""
        self._keys = [
            Ed25519PublicKey.from_public_bytes(_raw(text, "a key announcement public key"))
            for text in public_keys_base64.split(",")
            if text.strip()
        ]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, key: ApiKeyData) -> bool:
        if key.signature is None:
            return False
        try:
            signature = base64.b64decode(key.signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        message = signed_bytes(key)
        for public in self._keys:
            try:
                public.verify(signature, message)
            except InvalidSignature:
                continue
            return True
        return False


def generate_signing_key() -> tuple[str, str]:
    """A new (private, public) pair, base64: `slm-intake keys signing-key` prints one for an operator."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()
