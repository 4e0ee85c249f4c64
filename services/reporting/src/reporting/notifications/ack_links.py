"""Signed acknowledgement links: whoever received a notification may stop its ladder without an API key.

A link is `{public_base_url}/v1/notification-acks/{id}.{expires}.{signature}`: the signature is HMAC-SHA256 of
`{id}.{expires}` under a key derived from the first of `REPORTING_NOTIFICATION_SECRET_KEYS` (domain-separated,
so it signs nothing else), base64url without padding. It acknowledges that one notification's ladder only, until
`expires` (Unix seconds, 7 days after sending). Opening it (GET) shows a page with a button; only the POST the
button sends acknowledges, so a mail scanner that follows links acknowledges nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

LINK_PATH = "/v1/notification-acks"
LINK_LIFETIME = timedelta(days=7)
_PURPOSE = b"slm.notification.ack-link.v1"


class AckLinks:
    def __init__(self, encryption_keys: str | None, base_url: str) -> None:
        first = next((part.strip() for part in (encryption_keys or "").split(",") if part.strip()), None)
        self._key = hmac.new(first.encode(), _PURPOSE, hashlib.sha256).digest() if first else None
        self._base = base_url.rstrip("/")

    @property
    def enabled(self) -> bool:
        return self._key is not None and bool(self._base)

    def _signature(self, notification_id: str, expires: int) -> str:
        assert self._key is not None
        digest = hmac.new(self._key, f"{notification_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def link(self, notification_id: str, sent_at: datetime) -> str | None:
        if not self.enabled:
            return None
        expires = int((sent_at + LINK_LIFETIME).timestamp())
        return f"{self._base}{LINK_PATH}/{notification_id}.{expires}.{self._signature(notification_id, expires)}"

    def verify(self, token: str, now: datetime) -> str | None:
        """The notification id the token acknowledges, or None (malformed, forged or expired)."""
        if self._key is None:
            return None
        notification_id, _, rest = token.partition(".")
        expires_text, _, signature = rest.partition(".")
        if not (notification_id and expires_text.isdigit() and signature) or len(expires_text) > 12:
            return None
        expires = int(expires_text)
        if not hmac.compare_digest(signature, self._signature(notification_id, expires)):
            return None
        return notification_id if now.timestamp() < expires else None
