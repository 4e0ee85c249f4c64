"""Real receivers on loopback for the notification channels, each checking the vendor's documented shape.

An HTTP server (uvicorn, in the test's event loop) answers the webhook, Slack, Teams, PagerDuty and
Alertmanager paths and records every request with the problems found in it; an aiosmtpd SMTP server records
every mail. A test asserts that the problems are empty, so a payload that drifts from the documented shape
fails the test even though the receiver took it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}  # Events API v2 payload.severity


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    problems: list[str]


@dataclass
class Receivers:
    base_url: str = ""
    smtp_port: int = 0
    requests: list[Received] = field(default_factory=list)
    mails: list[EmailMessage] = field(default_factory=list)
    failures_left: dict[str, int] = field(default_factory=dict)  # path -> 503s to answer before taking
    delay_seconds: float = 0.0  # a slow receiver: each request takes this long to answer
    path_delays: dict[str, float] = field(default_factory=dict)  # one slow path among quick ones

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


def _rfc3339(value: Any, problems: list[str], what: str) -> None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{what} is not RFC 3339: {value!r}")
        return
    if parsed.tzinfo is None:
        problems.append(f"{what} has no offset")


def check_webhook(headers: dict[str, str], raw: bytes, body: Any) -> list[str]:
    """Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature `v1,<base64 HMAC>` of id.ts.body."""
    problems = [f"missing {h}" for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in headers]
    if problems:
        return problems
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.split(",", 1) for part in headers["webhook-signature"].split(" ")]
    if not any(version == "v1" and hmac.compare_digest(signature, expected) for version, signature in offered):
        problems.append("webhook-signature does not verify")
    if not headers["webhook-timestamp"].isdigit():
        problems.append("webhook-timestamp is not Unix seconds")
    if not isinstance(body, dict) or not {"type", "timestamp", "data"} <= body.keys():
        problems.append("body is not {type, timestamp, data}")
    return problems


def check_slack(body: Any) -> list[str]:
    """Incoming webhook: `text` (the fallback) and Block Kit `blocks` of known types."""
    problems: list[str] = []
    if not isinstance(body.get("text"), str) or not body["text"]:
        problems.append("no text fallback")
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not blocks or len(blocks) > 50:
        return [*problems, "blocks: 1..50 required"]
    for block in blocks:
        kind = block.get("type")
        if kind == "header" and (block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150):
            problems.append("a header is plain_text of at most 150 characters")
        elif kind == "section" and not ("text" in block or "fields" in block):
            problems.append("a section has text or fields")
        elif kind == "section" and len(block.get("fields", [])) > 10:
            problems.append("a section has at most 10 fields")
        elif kind not in ("header", "section", "context", "divider", "actions"):
            problems.append(f"unknown block type {kind!r}")
    return problems


def check_teams(body: Any) -> list[str]:
    """Teams Workflows: {type: message, attachments: [{contentType: ...adaptive, content: AdaptiveCard}]}."""
    if body.get("type") != "message" or not isinstance(body.get("attachments"), list) or not body["attachments"]:
        return ["not a message with attachments"]
    problems: list[str] = []
    for attachment in body["attachments"]:
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            problems.append("attachment is not an Adaptive Card")
        card = attachment.get("content", {})
        if card.get("type") != "AdaptiveCard" or not card.get("version") or not isinstance(card.get("body"), list):
            problems.append("content is not an AdaptiveCard with a version and a body")
    return problems


def check_pagerduty(body: Any) -> list[str]:
    """Events API v2: routing_key, event_action; a trigger has payload.summary/source/severity."""
    problems: list[str] = []
    if not body.get("routing_key"):
        problems.append("no routing_key")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append(f"event_action {action!r}")
    if action in ("acknowledge", "resolve") and not body.get("dedup_key"):
        problems.append(f"{action} without dedup_key")
    if action == "trigger":
        payload = body.get("payload") or {}
        for key in ("summary", "source", "severity"):
            if not payload.get(key):
                problems.append(f"payload.{key} missing")
        if payload.get("severity") not in PAGERDUTY_SEVERITIES:
            problems.append(f"payload.severity {payload.get('severity')!r}")
        if len(payload.get("summary", "")) > 1024:
            problems.append("payload.summary over 1024 characters")
        if "timestamp" in payload:
            _rfc3339(payload["timestamp"], problems, "payload.timestamp")
    return problems


def check_alertmanager(body: Any) -> list[str]:
    """`POST /api/v2/alerts`: a list of {labels: {str: str}, annotations, startsAt, endsAt?, generatorURL?}."""
    if not isinstance(body, list) or not body:
        return ["not a non-empty list of alerts"]
    problems: list[str] = []
    for alert in body:
        labels = alert.get("labels")
        if not isinstance(labels, dict) or not labels or not all(isinstance(v, str) for v in labels.values()):
            problems.append("labels are a non-empty map of strings")
        elif "alertname" not in labels:
            problems.append("no alertname label")
        for key in ("startsAt", "endsAt"):
            if key in alert:
                _rfc3339(alert[key], problems, key)
    return problems


CHECKS = {
    "/slack": check_slack,
    "/teams": check_teams,
    "/pagerduty/v2/enqueue": check_pagerduty,
    "/am/api/v2/alerts": check_alertmanager,
}


def _app(receivers: Receivers) -> Starlette:
    async def receive(request: Request) -> Response:
        raw = await request.body()
        path = request.url.path
        if receivers.delay_seconds or path in receivers.path_delays:
            await asyncio.sleep(receivers.path_delays.get(path, receivers.delay_seconds))
        if receivers.failures_left.get(path, 0) > 0:
            receivers.failures_left[path] -= 1
            return Response("try later", status_code=503)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            receivers.requests.append(Received(path, headers, raw, ["body is not JSON"]))
            return Response(status_code=400)
        problems = check_webhook(headers, raw, body) if path.startswith("/hook") else CHECKS[path](body)
        if headers.get("content-type", "").split(";")[0] != "application/json":
            problems.append("content-type is not application/json")
        receivers.requests.append(Received(path, headers, body, problems))
        if path == "/pagerduty/v2/enqueue":
            return JSONResponse(
                {"status": "success", "message": "Event processed", "dedup_key": body.get("dedup_key")}, status_code=202
            )
        return Response("ok", status_code=200)

    paths = ["/hook", "/hook/other", *CHECKS]
    return Starlette(routes=[Route(path, receive, methods=["POST"]) for path in paths])


class _MailHandler:
    def __init__(self, receivers: Receivers) -> None:
        self._receivers = receivers

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self._receivers.mails.append(mail)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def running_receivers() -> AsyncIterator[Receivers]:
    receivers = Receivers()
    # A socket already listening: connections made before the server accepts wait in its backlog.
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(128)
    server = uvicorn.Server(uvicorn.Config(_app(receivers), log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    receivers.base_url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    receivers.smtp_port = _free_port()
    smtp = Controller(_MailHandler(receivers), hostname="127.0.0.1", port=receivers.smtp_port)
    smtp.start()
    try:
        yield receivers
    finally:
        smtp.stop()
        server.should_exit = True
        await serving
        listening.close()
