"""The channels a notification goes out on, each in its vendor's documented shape:

- `webhook`: a generic webhook signed per the Standard Webhooks spec: headers `webhook-id` (the notification's
  id, the same on every retry, so a receiver can drop a repeat), `webhook-timestamp` (Unix seconds) and
  `webhook-signature` = `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the base64 part of the
  `whsec_` secret; body `{"type", "timestamp", "data"}`.
- `slack`: an incoming webhook with Block Kit `blocks` and a `text` fallback.
- `teams`: a Microsoft Teams Workflows webhook: a `message` whose `attachments` hold one Adaptive Card (1.4).
- `pagerduty`: Events API v2 (`POST /v2/enqueue`): `trigger` with a `payload`, `resolve` with the same
  `dedup_key` when the clock stops.
- `alertmanager`: `POST /api/v2/alerts`, a list of alerts with `labels`, `annotations`, `startsAt` (and
  `endsAt` when resolved).
- `email`: SMTP (STARTTLS when asked), a multipart/alternative message with text and HTML parts.

The payload builders are pure; `Senders.send` does the I/O and says whether a failure is worth a retry.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import smtplib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Literal

from reporting.domain.messages import Message
from reporting.domain.notification_policy import Channel
from reporting.notifications.http11 import Http11Client, HttpFailure, HttpxClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

EVENT_TYPE = "sla.notification.v1"


class DeliveryFailed(Exception):
    """The channel did not take the message; `permanent`: retrying cannot help (a 4xx other than 408/429)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Delivery:
    notification_id: str
    dedup_key: str  # the same for a cycle's trigger and its resolve (PagerDuty, Alertmanager)
    trigger: str
    level: int
    channel: Channel
    secret: str | None
    recipients: tuple[str, ...]
    message: Message
    data: dict[str, Any]  # the machine-readable notification (the webhook's `data`)
    event_at: datetime


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def standard_webhook_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` per the Standard Webhooks spec; `secret` is `whsec_` + base64 of the key."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_request(delivery: Delivery, now: datetime) -> tuple[bytes, dict[str, str]]:
    body = _json({"type": EVENT_TYPE, "timestamp": now.isoformat(), "data": delivery.data})
    headers = {"content-type": "application/json"}
    if delivery.secret is not None:
        timestamp = int(now.timestamp())
        headers |= {
            "webhook-id": delivery.notification_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_webhook_signature(delivery.secret, delivery.notification_id, timestamp, body),
        }
    return body, headers


def slack_payload(delivery: Delivery) -> dict[str, Any]:
    message = delivery.message
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{value}" if label else value}
                for label, value in message.fields[:10]
            ],
        },
    ]
    links = [
        f"<{url}|{label}>"
        for url, label in ((message.link, message.link_label), (message.ack_link, message.ack_label))
        if url
    ]
    if links:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "  ·  ".join(links)}})
    if delivery.recipients:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " ".join(delivery.recipients)}]})
    return {"text": message.text, "blocks": blocks}


def teams_payload(delivery: Delivery) -> dict[str, Any]:
    message = delivery.message
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": message.title, "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in message.fields]},
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    actions = [
        {"type": "Action.OpenUrl", "title": label, "url": url}
        for url, label in ((message.link, message.link_label), (message.ack_link, message.ack_label))
        if url
    ]
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def pagerduty_payload(delivery: Delivery) -> dict[str, Any]:
    assert delivery.secret is not None  # the policy refuses a pagerduty channel without its routing key
    if delivery.trigger == "resolve":
        return {"routing_key": delivery.secret, "event_action": "resolve", "dedup_key": delivery.dedup_key}
    message = delivery.message
    payload: dict[str, Any] = {
        "routing_key": delivery.secret,
        "event_action": "trigger",
        "dedup_key": delivery.dedup_key,
        "payload": {
            "summary": message.title[:1024],
            "source": str(delivery.data.get("service") or "slm"),
            "severity": message.severity,
            "timestamp": delivery.event_at.isoformat(),
            "component": str(delivery.data.get("metric") or ""),
            "group": str(delivery.data.get("customer") or ""),
            "class": delivery.trigger,
            "custom_details": delivery.data,
        },
    }
    links = [
        {"href": url, "text": label}
        for url, label in ((message.link, message.link_label), (message.ack_link, message.ack_label))
        if url
    ]
    if links:
        payload["links"] = links
    return payload


def alertmanager_payload(delivery: Delivery, now: datetime) -> list[dict[str, Any]]:
    """One alert per (cycle or alert episode, rule), like PagerDuty's dedup key: its labels, which are its
    identity in Alertmanager, stay the same from the first warning to the resolve (`endsAt`); what changes (the
    trigger, severity, priority, figures) travels in the annotations."""
    data = delivery.data
    labels = {"alertname": "SLOAlert" if data.get("slo_id") else "SLAClock", "dedup_key": delivery.dedup_key}
    for key in ("ticket_id", "policy_id", "metric", "slo_id"):
        if data.get(key) is not None:
            labels[key] = str(data[key])
    annotations = {
        "summary": delivery.message.title,
        "description": delivery.message.text,
        "severity": delivery.message.severity,
        "trigger": delivery.trigger,
    }
    for key in ("priority", "service", "customer", "ack_link"):
        if data.get(key) is not None:
            annotations[key] = str(data[key])
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations, "startsAt": delivery.event_at.isoformat()}
    if delivery.trigger == "resolve":
        alert["endsAt"] = now.isoformat()
    if delivery.message.link:
        alert["generatorURL"] = delivery.message.link
    return [alert]


def email_message(delivery: Delivery) -> EmailMessage:
    smtp = delivery.channel.smtp
    assert smtp is not None
    message = delivery.message
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = smtp.sender
    mail["To"] = ", ".join(delivery.recipients)
    mail["Message-ID"] = f"<{delivery.notification_id}@slm.notifications>"
    mail.set_content(message.text)
    rows = "".join(
        f"<tr><th align=left>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in message.fields
    )
    link = "".join(
        f'<p><a href="{html.escape(url, quote=True)}">{html.escape(label)}</a></p>'
        for url, label in ((message.link, message.link_label), (message.ack_link, message.ack_label))
        if url
    )
    mail.add_alternative(
        f"<html><body><h2>{html.escape(message.title)}</h2><table>{rows}</table>{link}</body></html>", subtype="html"
    )
    return mail


class Senders:
    """Sends a delivery on its channel; raises `DeliveryFailed` when the channel did not take it."""

    def __init__(self, timeout_seconds: float, http_client: Literal["h11", "httpx"] = "h11") -> None:
        self._client: Http11Client | HttpxClient | None = None
        self._timeout = timeout_seconds
        self._kind = http_client

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """One HTTP client (its kept-alive connections) for every send while open."""
        client = Http11Client(self._timeout) if self._kind == "h11" else HttpxClient(self._timeout)
        self._client = client
        try:
            yield
        finally:
            self._client = None
            await client.aclose()

    async def send(self, delivery: Delivery, now: datetime) -> None:
        channel = delivery.channel
        if channel.type == "email":
            if not delivery.recipients:
                raise DeliveryFailed("an e-mail needs recipients", permanent=True)
            await asyncio.to_thread(self._send_mail, delivery)  # smtplib blocks: off the event loop
            return
        assert channel.url is not None
        if channel.type == "webhook":
            body, headers = webhook_request(delivery, now)
            await self._post(channel.url, body, headers)
        elif channel.type == "slack":
            await self._post(channel.url, _json(slack_payload(delivery)))
        elif channel.type == "teams":
            await self._post(channel.url, _json(teams_payload(delivery)))
        elif channel.type == "pagerduty":
            await self._post(channel.url, _json(pagerduty_payload(delivery)))
        else:
            await self._post(channel.url.rstrip("/") + "/api/v2/alerts", _json(alertmanager_payload(delivery, now)))

    async def _post(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        if self._client is None:
            raise DeliveryFailed("the senders are not open")
        try:
            answer = await self._client.post(url, body, headers or {"content-type": "application/json"})
        except HttpFailure as error:
            raise DeliveryFailed(str(error)) from error
        if answer.status >= 300:
            permanent = 400 <= answer.status < 500 and answer.status not in (408, 425, 429)
            raise DeliveryFailed(
                f"HTTP {answer.status}: {answer.body[:200].decode(errors='replace')}", permanent=permanent
            )

    def _send_mail(self, delivery: Delivery) -> None:
        smtp = delivery.channel.smtp
        assert smtp is not None
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=self._timeout) as server:
                if smtp.starttls:
                    server.starttls()
                if smtp.username and delivery.secret:
                    server.login(smtp.username, delivery.secret)
                server.send_message(email_message(delivery))
        except smtplib.SMTPResponseException as error:
            raise DeliveryFailed(f"SMTP {error.smtp_code}", permanent=500 <= error.smtp_code < 600) from error
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryFailed(f"SMTP: {type(error).__name__}: {error}") from error
