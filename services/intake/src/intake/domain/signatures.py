"""Webhook signatures, pure: each upstream system's scheme, checked against the tenant's secrets.

- Jira (admin webhooks with a secret): `X-Hub-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body keyed
  with the secret (the WebSub `method=signature` format). Jira sends no signed timestamp, so replays are
  refused by remembering deliveries, not by age.
- Zendesk: `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(timestamp + body)) with the timestamp of
  `X-Zendesk-Webhook-Signature-Timestamp` (RFC 3339, e.g. `2021-07-25T10:00:00Z`). A timestamp outside the
  replay window either way is refused, which bounds how long deliveries must be remembered.
- ServiceNow (outbound REST has no scheme of its own): the same construction as Zendesk's under our headers
  `X-SLM-Webhook-Signature` and `X-SLM-Webhook-Timestamp` (Unix seconds or RFC 3339), which a business rule
  computes with `GlideCertificateEncryption.generateMac` (docs/security.md).

Several secrets may be valid at once (the active one and a rotated one in its grace period); a signature
verifying under any of them is good. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from intake.domain.mapping import System

JIRA_SIGNATURE = "x-hub-signature"
ZENDESK_SIGNATURE = "x-zendesk-webhook-signature"
ZENDESK_TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
SERVICENOW_SIGNATURE = "x-slm-webhook-signature"
SERVICENOW_TIMESTAMP = "x-slm-webhook-timestamp"

SIGNATURE_HEADERS: Mapping[System, tuple[str, str | None]] = {
    "jira": (JIRA_SIGNATURE, None),
    "zendesk": (ZENDESK_SIGNATURE, ZENDESK_TIMESTAMP),
    "servicenow": (SERVICENOW_SIGNATURE, SERVICENOW_TIMESTAMP),
}


@dataclass(frozen=True)
class Verdict:
    """`ok`, or why not: `missing_signature`, `bad_signature`, `bad_timestamp`, `stale_timestamp`."""

    reason: str | None
    delivery: str | None = None  # what identifies this delivery for replay refusal (a digest, never the secret)

    @property
    def ok(self) -> bool:
        return self.reason is None


def jira_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def timestamped_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest()).decode()


def parse_timestamp(text: str) -> datetime | None:
    """Unix seconds or RFC 3339 with an offset; None for anything else."""
    text = text.strip()
    if text.isdigit() and len(text) <= 12:
        return datetime.fromtimestamp(int(text), UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def verify(
    system: System, secrets: Sequence[bytes], headers: Mapping[str, str], body: bytes, now: datetime, window: timedelta
) -> Verdict:
    """Check a delivery's signature (`headers` with lower-case names) against the tenant's `secrets`."""
    signature_header, timestamp_header = SIGNATURE_HEADERS[system]
    signature = headers.get(signature_header, "").strip()
    if not signature:
        return Verdict("missing_signature")
    if timestamp_header is None:
        expected = [jira_signature(secret, body) for secret in secrets]
        good = any(hmac.compare_digest(candidate.encode(), signature.encode()) for candidate in expected)
        return Verdict(None, _digest(system, signature)) if good else Verdict("bad_signature")
    timestamp = headers.get(timestamp_header, "").strip()
    instant = parse_timestamp(timestamp) if timestamp else None
    if instant is None:
        return Verdict("bad_timestamp")
    expected = [timestamped_signature(secret, timestamp, body) for secret in secrets]
    if not any(hmac.compare_digest(candidate.encode(), signature.encode()) for candidate in expected):
        return Verdict("bad_signature")
    # Checked after the signature, so the timestamp is known to be the sender's, not an attacker's.
    if abs(now - instant) > window:
        return Verdict("stale_timestamp")
    return Verdict(None, _digest(system, timestamp, signature))
