"""HTTP routes of notifications: the policy (YAML or JSON, versioned), the delivery log, acknowledgement.

- `PUT /v1/notification-policies` (scope `config`): a new version of the tenant's policy; YAML when the
  content type says yaml, JSON otherwise. Over `MAX_POLICY_BYTES` is a 413 (the request guard), a malformed
  document a 400, a policy over its limits (rules, levels, recipients...) or inconsistent a 422 naming the
  field. Channel secrets are stored encrypted and never shown back.
- `GET /v1/notification-policies[?version=]` (scope `read`).
- `GET /v1/notifications?ticket=&status=&limit=` (scope `read`): the delivery log, newest first.
- `POST /v1/notifications/{id}:ack` (scope `read`: whoever is paged may stop the reminders; it changes no
  data): the ladder stops, its pending levels are suppressed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
import yaml
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting import tables
from reporting.domain.notification_policy import MAX_POLICY_BYTES, NotificationPolicy
from reporting.handlers import Now
from reporting.notifications import PolicyStore, load_policies, save_policy
from slm_shared.bounded_yaml import load_one
from slm_shared.runtime import ConfigTenant, ReadTenant

POLICY_PATH = "/v1/notification-policies"
BODY_LIMITS = {POLICY_PATH: MAX_POLICY_BYTES}
Status = Literal["pending", "retrying", "sent", "suppressed", "dead"]


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def notification_router(sessions: async_sessionmaker[AsyncSession], store: PolicyStore, now: Now) -> APIRouter:
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
        if len(notification_id) > 64:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
        t = tables.notifications
        at = now()
        async with sessions() as session, session.begin():
            ladder = (await session.execute(sa.select(t.c.ladder_key).where(
                t.c.tenant_id == tenant, t.c.id == notification_id))).scalar()
            if ladder is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
            mine = sa.and_(t.c.tenant_id == tenant, t.c.ladder_key == ladder)
            await session.execute(sa.update(t).where(mine, t.c.id == notification_id, t.c.acked_at.is_(None))
                                  .values(acked_at=at))
            stopped = (await session.execute(sa.update(t).where(mine, t.c.status.in_(("pending", "retrying")))
                                             .values(status="suppressed", reason="acknowledged")
                                             .returning(t.c.id))).scalars().all()
        return {"id": notification_id, "acknowledged_at": at.isoformat(), "suppressed": sorted(stopped)}

    return router
