"""The service review pack over HTTP: `GET /v1/reviews/{period}` (json, html, pdf), its approval
`POST /v1/reviews/{period}:approve` (who, when, comment; the pack frozen with the SHA-256 of its canonical JSON)
and the complaint log's handling `PATCH /v1/complaints/{ticket_id}`
(reporting.reviews builds a pack, reporting.review_packs stores and serves them: the unit of work's `reviews`).

Reads need the key scope `read`; approving and handling complaints need `config`.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from reporting.domain.config import Name, Text
from reporting.i18n import choose_language
from reporting.render.pdf import html_to_pdf
from reporting.render.review import render_review_html
from reporting.unit_of_work import Units
from slm_shared.auth import ConfigTenant, ReadTenant
from slm_shared.time_source import Now

ReviewFormat = Literal["json", "html", "pdf"]


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approved_by: Name
    comment: Text | None = None


class ComplaintChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marked: bool | None = None
    status: Literal["open", "acknowledged", "in_progress", "resolved", "rejected"] | None = None
    owner: Name | None = None
    note: Text | None = None
    improvement_id: Name | None = None


def reviews_router(units: Units, now: Now) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reviews"])

    @router.get("/reviews/{period}", summary="The service review pack of a period")
    async def review(
        tenant: ReadTenant,
        period: str,
        request: Request,
        customer: str | None = None,
        format: ReviewFormat = "json",
        lang: str | None = None,
    ) -> Response:
        async with units() as uow:
            await uow.read_only()
            document, default = await uow.reviews.current(tenant, period, customer, now())
        if format == "json":
            return JSONResponse(document)
        language = choose_language(lang, request.headers.get("accept-language"), default)
        html = render_review_html(document, language)
        if format == "html":
            return HTMLResponse(html, headers={"Content-Language": language})
        pdf = await asyncio.to_thread(html_to_pdf, html)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"review-{tenant}-{period}-{customer or 'all'}")
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{stem}.pdf"', "Content-Language": language},
        )

    @router.post(
        "/reviews/{period}:approve",
        status_code=status.HTTP_201_CREATED,
        summary="Approve a period's review: freeze it with who, when, a comment and its hash",
    )
    async def approve(
        tenant: ConfigTenant, period: str, body: Annotated[ApprovalRequest, Body()], customer: str | None = None
    ) -> dict[str, Any]:
        at = now()
        async with units() as uow:
            found, digest = await uow.reviews.approve(tenant, period, customer, body.approved_by, body.comment, at)
            await uow.commit()
        return {
            "period": found.label,
            "customer": customer,
            "approved_by": body.approved_by,
            "approved_at": at.isoformat(),
            "comment": body.comment,
            "content_sha256": digest,
        }

    @router.patch("/complaints/{ticket_id}", summary="Mark a survey answer a complaint, or record its handling")
    async def handle_complaint(
        tenant: ConfigTenant,
        ticket_id: Annotated[str, Path(max_length=512)],
        change: Annotated[ComplaintChange, Body()],
    ) -> dict[str, Any]:
        values = {k: v for k, v in change.model_dump().items() if v is not None}
        async with units() as uow:
            row = await uow.reviews.record_complaint_handling(tenant, ticket_id, values, now())
            await uow.commit()
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "tenant_id"}

    return router
