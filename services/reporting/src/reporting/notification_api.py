"""HTTP routes of notifications: the policy (YAML or JSON, versioned), the delivery log, acknowledgement.

- `PUT /v1/notification-policies` (scope `config`): a new version of the tenant's policy; YAML when the
  content type says yaml, JSON otherwise. Over `MAX_POLICY_BYTES` is a 413 (the request guard), a malformed
  document a 400, a policy over its limits (rules, levels, recipients...) or inconsistent a 422 naming the
  field. Channel secrets are stored encrypted and never shown back.
- `GET /v1/notification-policies[?version=]` (scope `read`).
- `GET /v1/notifications?ticket=&status=&limit=` (scope `read`): the delivery log, newest first.
- `POST /v1/notifications/{id}:ack` (scope `read`: whoever is paged may stop the reminders; it changes no
  data): the ladder stops, its pending levels are suppressed.
- `GET|POST /v1/notification-acks/{signed token}` (no key: the signed link in each message, reporting.ack_links):
  the GET shows a button, the POST acknowledges as above.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
import yaml
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting import tables
from reporting.ack_links import LINK_PATH, AckLinks
from reporting.domain.notification_policy import MAX_POLICY_BYTES, NotificationPolicy
from reporting.handlers import Now
from reporting.notifications import PolicyStore, load_policies, save_policy
from slm_shared.auth import ConfigTenant, ReadTenant
from slm_shared.bounded_yaml import load_one

POLICY_PATH = "/v1/notification-policies"
ACK_LINK_PREFIX = LINK_PATH.removeprefix("/v1")
BODY_LIMITS = {POLICY_PATH: MAX_POLICY_BYTES, f"{LINK_PATH}/*": 1024}
PUBLIC_PATHS = frozenset({f"{LINK_PATH}/*"})  # the signed link is its own credential
Status = Literal["pending", "retrying", "sent", "suppressed", "dead"]


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def acknowledged(session: AsyncSession, tenant: str, notification_id: str, at: datetime) -> list[str] | None:
    """Acknowledges the notification's ladder: the notification is marked, the ladder's pending levels are
    suppressed and no repeat follows. Returns the suppressed ids, or None when the tenant has no such
    notification."""
    t = tables.notifications
    if len(notification_id) > 128:
        return None
    ladder = (await session.execute(sa.select(t.c.ladder_key).where(
        t.c.tenant_id == tenant, t.c.id == notification_id))).scalar()
    if ladder is None:
        return None
    mine = sa.and_(t.c.tenant_id == tenant, t.c.ladder_key == ladder)
    await session.execute(sa.update(t).where(mine, t.c.id == notification_id, t.c.acked_at.is_(None))
                          .values(acked_at=at))
    stopped = (await session.execute(sa.update(t).where(mine, t.c.status.in_(("pending", "retrying")))
                                     .values(status="suppressed", reason="acknowledged")
                                     .returning(t.c.id))).scalars().all()
    return sorted(stopped)


def _page(message: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    body = message if message.startswith("<form") else html.escape(message)
    return HTMLResponse(f"<!doctype html><html><head><meta charset=utf-8><title>Notification</title></head>"
                        f"<body>{body}</body></html>", status_code=status_code, headers={"Cache-Control": "no-store"})


def notification_router(sessions: async_sessionmaker[AsyncSession], store: PolicyStore, now: Now,
                        links: AckLinks) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["notifications"])

    @router.put("/notification-policies", summary="Apply a new version of the tenant's notification policy")
    async def put_policy(request: Request, tenant: ConfigTenant) -> dict[str, Any]:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        try:
            text = body.decode()
            document = load_one(text) if "yaml" in content_type else json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                f"not a {'YAML' if 'yaml' in content_type else 'JSON'} document: "
                                f"{str(error)[:300]}") from error
        try:
            policy = NotificationPolicy.model_validate(document if document is not None else {})
        except ValidationError as error:
            # The kit's 422 handler answers it, quoting back only short, valid UTF-8.
            raise RequestValidationError(error.errors(include_url=False, include_input=False)[:50]) from error
        if any(channel.secret is not None for channel in policy.channels) and not store.can_store_secrets:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "this reporting service cannot store channel secrets: "
                                "REPORTING_NOTIFICATION_SECRET_KEYS is not set")
        sealed = store.seal(policy)
        async with sessions() as session, session.begin():
            version = await save_policy(session, tenant, sealed, now())
        return {"version": version, "policy": store.shown(sealed)}

    @router.get("/notification-policies", summary="The tenant's notification policy (latest or `version`)")
    async def get_policy(tenant: ReadTenant,
                         version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> dict[str, Any]:
        async with sessions() as session:
            found = (await load_policies(session, [tenant], version)).get(tenant)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification policy version" if version
                                else "no notification policy applied yet")
        return {"version": found.version, "policy": store.shown(found.document)}

    @router.get("/notifications", summary="The delivery log, newest first")
    async def delivery_log(tenant: ReadTenant,
                           ticket: Annotated[str | None, Query(max_length=512)] = None,
                           state: Annotated[Status | None, Query(alias="status")] = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        t = tables.notifications
        statement = sa.select(t.c.id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle, t.c.slo_id,
                              t.c.rule_id, t.c.trigger, t.c.level, t.c.channel, t.c.recipients, t.c.status,
                              t.c.reason, t.c.attempts, t.c.last_error, t.c.event_at, t.c.due_at,
                              t.c.next_attempt_at, t.c.sent_at, t.c.acked_at, t.c.policy_version,
                              t.c.created_at).where(t.c.tenant_id == tenant)
        if ticket is not None:
            statement = statement.where(t.c.ticket_id == ticket)
        if state is not None:
            statement = statement.where(t.c.status == state)
        async with sessions() as session:
            rows = (await session.execute(statement.order_by(t.c.created_at.desc(), t.c.level.desc())
                                          .limit(limit))).mappings().all()
        return {"notifications": [{k: _iso(v) for k, v in row.items()} for row in rows]}

    @router.post("/notifications/{notification_id}:ack", summary="Acknowledge: the ladder stops")
    async def acknowledge(tenant: ReadTenant, notification_id: str) -> dict[str, Any]:
        at = now()
        async with sessions() as session, session.begin():
            stopped = await acknowledged(session, tenant, notification_id, at)
        if stopped is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
        return {"id": notification_id, "acknowledged_at": at.isoformat(), "suppressed": stopped}

    @router.get(f"{ACK_LINK_PREFIX}/{{token}}", response_class=HTMLResponse, include_in_schema=False)
    async def ack_page(token: str) -> HTMLResponse:
        """The signed link's page: a button, because only the POST acknowledges (link scanners only GET)."""
        if links.verify(token, now()) is None:
            return _page("This link is not valid or has expired.", status.HTTP_403_FORBIDDEN)
        action = html.escape(f"/v1{ACK_LINK_PREFIX}/{token}", quote=True)
        return _page(f'<form method="post" action="{action}"><button type="submit">Acknowledge</button></form>')

    @router.post(f"{ACK_LINK_PREFIX}/{{token}}", response_class=HTMLResponse,
                 summary="Acknowledge through a signed link (no API key): the ladder stops")
    async def ack_by_link(token: str) -> HTMLResponse:
        at = now()
        notification_id = links.verify(token, at)
        if notification_id is None:
            return _page("This link is not valid or has expired.", status.HTTP_403_FORBIDDEN)
        t = tables.notifications
        async with sessions() as session, session.begin():
            tenant = (await session.execute(sa.select(t.c.tenant_id).where(t.c.id == notification_id))).scalar()
            stopped = await acknowledged(session, tenant, notification_id, at) if tenant else None
        if stopped is None:
            return _page("This notification no longer exists.", status.HTTP_404_NOT_FOUND)
        return _page(f"Acknowledged: {len(stopped)} pending reminder(s) stopped.")

    return router
