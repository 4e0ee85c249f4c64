"""Signed API key announcements (slm_shared.signing) and scopes (slm_shared.auth), without I/O.

The signature vector is independent of the code under test: RFC 8032's test 1 key signed the canonical bytes
written out below with `openssl pkeyutl -sign -rawin` (Ed25519 signatures are deterministic).
"""

from __future__ import annotations

import pytest

from slm_shared.auth import FailedAuthentications, parse_scopes, scopes_text
from slm_shared.events import ApiKeyData
from slm_shared.signing import AnnouncementSigner, AnnouncementVerifier, generate_signing_key, signed_bytes

RFC8032_PRIVATE = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
RFC8032_PUBLIC = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
CANONICAL = (
    b'slm.tenant.apikey.v1\n{"key_hash":"'
    + b"0" * 64
    + b'","key_id":"a1b2c3d4e5f6","scopes":["ingest"],"status":"active","tenant_id":"acme"}'
)
OPENSSL_SIGNATURE = "TgB1EkuMkhafREIi1ze9RNqy6Egqa3WX+QT6JWNakB2BOw6/3fjPPREymJWMp5sjct2hZ141PBYmHTbwd/HJCQ=="
KEY = ApiKeyData(key_id="a1b2c3d4e5f6", tenant_id="acme", key_hash="0" * 64, status="active", scopes=("ingest",))


def test_the_signed_bytes_are_the_canonical_form() -> None:
    assert signed_bytes(KEY) == CANONICAL


def test_intake_signature_matches_openssl_and_verifies() -> None:
    signed = AnnouncementSigner(RFC8032_PRIVATE).sign(KEY)
    assert signed.signature == OPENSSL_SIGNATURE
    assert AnnouncementVerifier(RFC8032_PUBLIC).verify(signed)


def test_an_openssl_signature_verifies_without_the_signer() -> None:
    assert AnnouncementVerifier(RFC8032_PUBLIC).verify(KEY.model_copy(update={"signature": OPENSSL_SIGNATURE}))


@pytest.mark.parametrize(
    "change",
    [
        {"tenant_id": "globex"},
        {"key_hash": "1" * 64},
        {"status": "revoked"},
        {"scopes": ("ingest", "admin")},
        {"key_id": "ffffffffffff"},
    ],
)
def test_a_signature_does_not_carry_over_to_a_changed_announcement(change: dict[str, object]) -> None:
    forged = KEY.model_copy(update={"signature": OPENSSL_SIGNATURE, **change})
    assert not AnnouncementVerifier(RFC8032_PUBLIC).verify(forged)


def test_unsigned_garbled_or_foreign_signatures_are_refused() -> None:
    verifier = AnnouncementVerifier(RFC8032_PUBLIC)
    other_private, _ = generate_signing_key()
    assert not verifier.verify(KEY)
    assert not verifier.verify(KEY.model_copy(update={"signature": "not base64!"}))
    assert not verifier.verify(AnnouncementSigner(other_private).sign(KEY))


def test_during_a_rotation_either_public_key_verifies() -> None:
    new_private, new_public = generate_signing_key()
    verifier = AnnouncementVerifier(f"{new_public},{RFC8032_PUBLIC}")
    assert verifier.verify(AnnouncementSigner(new_private).sign(KEY))
    assert verifier.verify(AnnouncementSigner(RFC8032_PRIVATE).sign(KEY))


def test_no_public_key_verifies_nothing() -> None:
    verifier = AnnouncementVerifier("")
    assert not verifier.configured
    assert not verifier.verify(AnnouncementSigner(RFC8032_PRIVATE).sign(KEY))


def test_an_announcement_from_before_scopes_grants_every_scope() -> None:
    old = ApiKeyData.model_validate({"key_id": "k", "tenant_id": "acme", "key_hash": "0" * 64, "status": "active"})
    assert old.scopes == ("ingest", "read", "config", "admin")


def test_scopes_parse_in_canonical_order_and_unknown_names_fail() -> None:
    assert parse_scopes("read, ingest") == ("ingest", "read")
    assert scopes_text(("admin", "ingest")) == "ingest admin"
    with pytest.raises(ValueError, match="delete"):
        parse_scopes("ingest,delete")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes(" , ")


def test_a_client_is_throttled_after_its_burst_of_failures_and_forgiven_over_time() -> None:
    failures = FailedAuthentications(burst=3, per_minute=6)  # one failure forgiven every 10 s
    for _ in range(3):
        assert failures.wait("10.0.0.1", 100.0) == 0.0
        failures.failed("10.0.0.1", 100.0)
    assert failures.wait("10.0.0.1", 100.0) == pytest.approx(10.0)
    assert failures.wait("10.0.0.2", 100.0) == 0.0  # another client is not affected
    assert failures.wait("10.0.0.1", 110.0) == 0.0
