"""HTTP routes of notifications: the policy (YAML or JSON, versioned), the delivery log, acknowledgement.

- `PUT /v1/notification-policies` (scope `config`): a new version of the tenant's policy; YAML when the
  content type says yaml, JSON otherwise. Over `MAX_POLICY_BYTES` is a 413 (the request guard), a malformed
  document a 400, a policy over its limits (rules, levels, recipients...) or inconsistent a 422 naming the
  field. Channel secrets are stored encrypted and never shown back.
- `GET /v1/notification-policies[?version=]` (scope `read`).
- `GET /v1/notifications?ticket=&status=&limit=` (scope `read`): the delivery log, newest first.
- `POST /v1/notifications/{id}:ack` (scope `read`: whoever is paged may stop the reminders; it changes no
  data): the ladder stops, its pending levels are suppressed.
- `GET|POST /v1/notification-acks/{signed token}` (no key: the signed link in each message,
  reporting.notifications.ack_links):
  the GET shows a button, the POST acknowledges as above.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from reporting.domain.notification_policy import MAX_POLICY_BYTES, NotificationPolicy
from reporting.notifications.ack_links import LINK_PATH, AckLinks
from reporting.notifications.policies import PolicyStore
from reporting.unit_of_work import Units
from slm_shared.auth import ConfigTenant, ReadTenant
from slm_shared.bounded_yaml import load_one
from slm_shared.time_source import Now

POLICY_PATH = "/v1/notification-policies"
ACK_LINK_PREFIX = LINK_PATH.removeprefix("/v1")
BODY_LIMITS = {POLICY_PATH: MAX_POLICY_BYTES, f"{LINK_PATH}/*": 1024}
PUBLIC_PATHS = frozenset({f"{LINK_PATH}/*"})  # the signed link is its own credential
Status = Literal["pending", "retrying", "sent", "suppressed", "dead"]


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _page(message: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    body = message if message.startswith("<form") else html.escape(message)
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset=utf-8><title>Notification</title></head><body>{body}</body></html>",
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def notification_router(units: Units, store: PolicyStore, now: Now, links: AckLinks) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["notifications"])

    @router.put("/notification-policies", summary="Apply a new version of the tenant's notification policy")
    async def put_policy(request: Request, tenant: ConfigTenant) -> dict[str, Any]:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        try:
            text = body.decode()
            document = load_one(text) if "yaml" in content_type else json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as error:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                f"not a {'YAML' if 'yaml' in content_type else 'JSON'} document: {str(error)[:300]}",
            ) from error
        try:
            policy = NotificationPolicy.model_validate(document if document is not None else {})
        except ValidationError as error:
            # The kit's 422 handler answers it, quoting back only short, valid UTF-8.
            raise RequestValidationError(error.errors(include_url=False, include_input=False)[:50]) from error
        if any(channel.secret is not None for channel in policy.channels) and not store.can_store_secrets:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "this reporting service cannot store channel secrets: REPORTING_NOTIFICATION_SECRET_KEYS is not set",
            )
        sealed = store.seal(policy)
        async with units() as uow:
            version = await uow.policies.save(tenant, sealed, now())
            await uow.commit()
        return {"version": version, "policy": store.shown(sealed)}

    @router.get("/notification-policies", summary="The tenant's notification policy (latest or `version`)")
    async def get_policy(
        tenant: ReadTenant, version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
    ) -> dict[str, Any]:
        async with units() as uow:
            found = (await uow.policies.latest([tenant], version)).get(tenant)
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                "no such notification policy version" if version else "no notification policy applied yet",
            )
        return {"version": found.version, "policy": store.shown(found.document)}

    @router.get("/notifications", summary="The delivery log, newest first")
    async def delivery_log(
        tenant: ReadTenant,
        ticket: Annotated[str | None, Query(max_length=512)] = None,
        state: Annotated[Status | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        async with units() as uow:
            rows = await uow.deliveries.log(tenant, ticket, state, limit)
        return {"notifications": [{k: _iso(v) for k, v in row.items()} for row in rows]}

    @router.post("/notifications/{notification_id}:ack", summary="Acknowledge: the ladder stops")
    async def acknowledge(tenant: ReadTenant, notification_id: str) -> dict[str, Any]:
        at = now()
        async with units() as uow:
            stopped = await uow.deliveries.acknowledge(tenant, notification_id, at)
            await uow.commit()
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

    @router.post(
        f"{ACK_LINK_PREFIX}/{{token}}",
        response_class=HTMLResponse,
        summary="Acknowledge through a signed link (no API key): the ladder stops",
    )
    async def ack_by_link(token: str) -> HTMLResponse:
        at = now()
        notification_id = links.verify(token, at)
        if notification_id is None:
            return _page("This link is not valid or has expired.", status.HTTP_403_FORBIDDEN)
        async with units() as uow:
            tenant = await uow.deliveries.tenant_of(notification_id)
            stopped = await uow.deliveries.acknowledge(tenant, notification_id, at) if tenant else None
            await uow.commit()
        if stopped is None:
            return _page("This notification no longer exists.", status.HTTP_404_NOT_FOUND)
        return _page(f"Acknowledged: {len(stopped)} pending reminder(s) stopped.")

    return router
