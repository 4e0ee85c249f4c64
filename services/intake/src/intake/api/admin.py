"""Tenant-scoped administration: webhook mappings (`read` to see, `config` to change), the tenant's webhook
secrets and replay of the archive (`admin`), recent rejections (`read`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from intake.api.common import AdminCaller, ConfigCaller, ReadCaller, error_responses
from intake.domain.mapping import MappingOverride, System, TicketMapping, effective_mapping
from intake.handlers.replay import Replayer
from intake.ports import IntakeUnitsOfWork
from intake.settings import IntakeSettings
from slm_shared.instants import utc_instant
from slm_shared.secret_cipher import SecretsNotConfigured
from slm_shared.time_source import Now

AcceptedType = Literal[
    "itsm.ticket.v1", "itsm.availability.v1", "itsm.measurement.v1", "itsm.maintenance.v1", "itsm.feedback.v1"
]


class MappingView(BaseModel):
    system: System
    override: MappingOverride
    effective: TicketMapping


class ReplayRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    start: AwareDatetime = Field(alias="from", description="event time, inclusive")
    end: AwareDatetime = Field(alias="to", description="event time, exclusive")
    types: list[AcceptedType] | None = Field(default=None, max_length=10, description="only these event types")

    @model_validator(mode="after")
    def _ordered(self) -> ReplayRequest:
        if self.start >= self.end:
            raise ValueError("`from` must be before `to`")
        return self


class ReplayResponse(BaseModel):
    replay_id: str
    events: int
    skipped: int


class RejectionView(BaseModel):
    id: int
    channel: str
    code: str
    reason: str
    event_id: str | None
    received_at: datetime
    raw_preview: str | None = Field(description="the first 2 KiB of the bytes as received, as UTF-8")


class WebhookSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=512,
        description=("the system's own signing secret (Zendesk generates its own); omit to have one generated"),
    )
    grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description=("how long the secret being replaced stays valid (default: webhook_rotation_grace_hours)"),
    )


class IssuedWebhookSecret(BaseModel):
    secret_id: str
    system: System
    secret: str = Field(description="shown this once; set it on the system's webhook")
    url_path: str = Field(description="where the system posts, e.g. /v1/webhooks/jira/acme")
    previous_valid_until: datetime | None


class WebhookSecretView(BaseModel):
    secret_id: str
    system: str
    created_at: datetime
    valid_until: datetime | None = Field(description="null for the active secret; else the end of its grace")


def admin_router(
    units: IntakeUnitsOfWork,
    replayer: Replayer,
    settings: IntakeSettings,
    now: Now,
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    responses = error_responses(401, 403, 429)

    @router.get("/mappings/{system}", response_model=MappingView, tags=["mappings"], responses=responses)
    async def get_mapping(system: System, who: ReadCaller) -> MappingView:
        """The tenant's mapping of this system's statuses, priorities and kinds, and the defaults it overrides."""
        async with units() as uow:
            override = await uow.mappings.override(who.tenant_id, system)
        return MappingView(
            system=system, override=override or MappingOverride(), effective=effective_mapping(system, override)
        )

    @router.put("/mappings/{system}", response_model=MappingView, tags=["mappings"], responses=responses)
    async def put_mapping(system: System, override: MappingOverride, who: ConfigCaller) -> MappingView:
        """Replace the tenant's override for this system; entries merge over the defaults key by key."""
        async with units() as uow:
            await uow.mappings.save(who.tenant_id, system, override)
            await uow.commit()
        return MappingView(system=system, override=override, effective=effective_mapping(system, override))

    @router.post(
        "/replay",
        response_model=ReplayResponse,
        status_code=status.HTTP_202_ACCEPTED,
        tags=["replay"],
        responses=error_responses(401, 403, 413, 429),
    )
    async def replay(request: ReplayRequest, who: AdminCaller) -> ReplayResponse:
        """Re-publish the tenant's archived canonical events with event time in [from, to) to their topics.

        Safe to repeat (events keep their ids; consumers dedup). Larger than `replay_max_http_events`:
        use `slm-intake replay`, which shows progress.
        """
        start, end = utc_instant(request.start, "from"), utc_instant(request.end, "to")
        count = await replayer.count(who.tenant_id, start, end, request.types)
        if count > settings.replay_max_http_events:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"{count} events to replay, over {settings.replay_max_http_events}: narrow the range or use "
                "`slm-intake replay`",
            )
        summary = await replayer.replay(who.tenant_id, start, end, request.types)
        return ReplayResponse(replay_id=summary.replay_id, events=summary.events, skipped=summary.skipped)

    @router.get("/rejections", response_model=list[RejectionView], tags=["events"], responses=responses)
    async def rejections(who: ReadCaller, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[RejectionView]:
        """The tenant's most recent rejected events (HTTP and webhooks), newest first."""
        async with units() as uow:
            rows = await uow.rejections.recent(who.tenant_id, limit)
        return [
            RejectionView(
                id=row["id"],
                channel=row["channel"],
                code=row["code"],
                reason=row["reason"],
                event_id=row["event_id"],
                received_at=row["received_at"],
                raw_preview=row["raw"][:2048].decode("utf-8", "replace") if row["raw"] is not None else None,
            )
            for row in rows
        ]

    @router.post(
        "/webhook-secrets/{system}",
        response_model=IssuedWebhookSecret,
        tags=["webhooks"],
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(401, 403, 429),
    )
    async def issue_webhook_secret(
        system: System, who: AdminCaller, body: WebhookSecretRequest | None = None
    ) -> IssuedWebhookSecret:
        """Issue (or import) the tenant's webhook secret for `system`; one already active is rotated: it stays
        valid for the grace period beside the new one, so the system's configuration can be changed without
        losing deliveries."""
        request = body or WebhookSecretRequest()
        grace = timedelta(
            seconds=request.grace_seconds
            if request.grace_seconds is not None
            else settings.webhook_rotation_grace_hours * 3600
        )
        try:
            async with units() as uow:
                issued = await uow.webhook_secrets.issue(who.tenant_id, system, now(), grace, request.secret)
                await uow.commit()
        except SecretsNotConfigured as error:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
        return IssuedWebhookSecret(
            secret_id=issued.secret_id,
            system=system,
            secret=issued.secret,
            url_path=f"/v1/webhooks/{system}/{who.tenant_id}",
            previous_valid_until=issued.previous_valid_until,
        )

    @router.get("/webhook-secrets", response_model=list[WebhookSecretView], tags=["webhooks"], responses=responses)
    async def list_webhook_secrets(who: AdminCaller) -> list[WebhookSecretView]:
        """The tenant's webhook secrets (ids and validity, never the secrets)."""
        async with units() as uow:
            secrets = await uow.webhook_secrets.list(who.tenant_id)
        return [
            WebhookSecretView(
                secret_id=info.secret_id, system=info.system, created_at=info.created_at, valid_until=info.valid_until
            )
            for info in secrets
        ]

    @router.delete("/webhook-secrets/{system}", tags=["webhooks"], responses=responses)
    async def revoke_webhook_secrets(system: System, who: AdminCaller) -> dict[str, int]:
        """Revoke every webhook secret of the tenant for `system` at once (no grace)."""
        async with units() as uow:
            revoked = await uow.webhook_secrets.revoke(who.tenant_id, system)
            await uow.commit()
        return {"revoked": revoked}

    return router
