"""Reporting's HTTP routes: the Service Level Report, published snapshots, configuration, period close and
the live dashboard.

Every route is scoped by the API key's tenant. A browser cannot send a bearer header on a plain page load, so
the dashboard also takes a sign-in: the key is posted once to its login form and the browser keeps only a
server-side session's random id, in an HttpOnly, SameSite=Strict cookie limited to /v1/dashboard
(reporting.sessions); the forms check the Origin (reporting.browser). Keys are never accepted in URLs.

Each route names the key scope it needs: `read` for reports, snapshots, the configuration and the dashboard,
`config` to change the configuration, `admin` to close periods.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Header, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import AwareDatetime, BaseModel

from reporting.browser import dashboard_policy, form_origin_allowed, new_nonce, own_origin, trusted_origins
from reporting.closing import PeriodCloser, PublishedReport
from reporting.domain.config import ReportingConfig
from reporting.domain.dashboard import DashboardView
from reporting.i18n import Language, choose_language
from reporting.read_side.snapshots import report_links
from reporting.render.html import render_dashboard, render_login, render_report_html
from reporting.render.pdf import render_pdf
from reporting.render.tabular import TABLES, render_csv, render_csv_zip
from reporting.reports import REPORT_SECONDS, ReportService, report_document, report_schema
from reporting.sessions import SessionPolicy
from reporting.settings import ReportingSettings
from reporting.unit_of_work import Units
from slm_shared.auth import AdminTenant, ApiKeyAuthenticator, ConfigTenant, ReadTenant, key_id_of
from slm_shared.instants import utc_instant
from slm_shared.time_source import Now

Format = Literal["json", "csv", "html", "pdf"]
DASHBOARD_COOKIE = "slm_dashboard_session"
DASHBOARD_PATH = "/v1/dashboard"
# The sign-in form carries the key itself, so it is the one body taken without one; it only ever holds a key.
DASHBOARD_PUBLIC = frozenset({f"{DASHBOARD_PATH}/login", f"{DASHBOARD_PATH}/logout"})
DASHBOARD_BODY_LIMITS = {f"{DASHBOARD_PATH}/login": 4096, f"{DASHBOARD_PATH}/logout": 1024}


class PeriodCloseRequest(BaseModel):
    at: AwareDatetime | None = None


def _file_stem(document: dict[str, Any]) -> str:
    header = document["header"]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"slr-{header['tenant']}-{header['period']['label']}")


async def rendered(
    document: dict[str, Any],
    fmt: Format,
    table: str | None,
    links: dict[str, str] | None = None,
    language: Language = "en",
) -> Response:
    if table is not None and table not in TABLES:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"`table` is one of {sorted(TABLES)}")
    if fmt == "json":
        return JSONResponse(document)
    stem = _file_stem(document)
    if fmt == "csv":
        if table is not None:
            return Response(
                render_csv(document, table),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{stem}-{table}.csv"'},
            )
        return Response(
            render_csv_zip(document),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{stem}-csv.zip"'},
        )
    if fmt == "html":
        return HTMLResponse(
            render_report_html(document, links=links, language=language), headers={"Content-Language": language}
        )
    pdf = await asyncio.to_thread(render_pdf, document, language)  # CPU-bound layout off the event loop
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{stem}.pdf"', "Content-Language": language},
    )


def report_router(service: ReportService, settings: ReportingSettings, now: Now, closer: PeriodCloser) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reports"])

    @router.get("/reports/slr", summary="Service Level Report for a period")
    async def service_level_report(
        tenant: ReadTenant,
        start: Annotated[AwareDatetime | None, Query(alias="from", description="period start, RFC 3339")] = None,
        end: Annotated[AwareDatetime | None, Query(alias="to", description="period end (exclusive), RFC 3339")] = None,
        service_name: Annotated[str | None, Query(alias="service")] = None,
        customer: str | None = None,
        format: Format = "json",
        table: Annotated[str | None, Query(description="one CSV table instead of the zip")] = None,
        clocks_limit: Annotated[int, Query(ge=0, le=100_000)] = 1000,
        lang: Annotated[str | None, Query(description="en or zh (HTML, PDF); else Accept-Language")] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Counting rules and the JSON schema: docs/reporting.md and /v1/reports/slr/schema.
        Without `from`/`to` the period is the last 30 days up to now."""
        end = utc_instant(end, "to") if end else now()
        start = utc_instant(start, "from") if start else end - timedelta(days=30)
        if end <= start:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "`to` must be after `from`")
        if end - start > timedelta(days=settings.max_report_days):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"a report covers at most {settings.max_report_days} days")
        with REPORT_SECONDS.labels("live", format).time():
            report = await service.generate(
                tenant, start.astimezone(UTC), end.astimezone(UTC), service_name, customer, clocks_limit
            )
            language = await service.language(tenant, lang, accept_language) if format in ("html", "pdf") else "en"
            return await rendered(report_document(report), format, table, language=language)

    @router.get("/reports/slr/schema", summary="JSON schema of the report (format=json)")
    async def schema() -> dict[str, Any]:
        return report_schema()

    @router.get("/reports", summary="Published report snapshots of the tenant")
    async def snapshots(tenant: ReadTenant, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        rows = await service.published(tenant, limit)
        return {"reports": [{**row, "links": report_links(settings.public_base_url, row["report_id"])} for row in rows]}

    @router.get("/reports/{report_id}", summary="A published snapshot, exactly as frozen")
    async def snapshot(
        tenant: ReadTenant,
        report_id: str,
        format: Format = "json",
        table: str | None = None,
        lineage: bool = False,
        lang: str | None = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        found = await service.published_report(tenant, report_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report")
        content, frozen_lineage = found
        if lineage:
            return JSONResponse(frozen_lineage)
        with REPORT_SECONDS.labels("snapshot", format).time():
            language = await service.language(tenant, lang, accept_language) if format in ("html", "pdf") else "en"
            return await rendered(content, format, table, language=language)

    @router.get("/reporting-config", summary="The tenant's reporting configuration")
    async def get_config(tenant: ReadTenant) -> dict[str, Any]:
        config, version = await service.config(tenant)
        return {"version": version, "config": config.model_dump(mode="json")}

    @router.put("/reporting-config", summary="Replace the tenant's reporting configuration")
    async def put_config(tenant: ConfigTenant, config: Annotated[ReportingConfig, Body()]) -> dict[str, Any]:
        version = await service.save_config(tenant, config, now())
        return {"version": version, "config": config.model_dump(mode="json")}

    @router.post("/periods:close", summary="Close the tenant's periods that ended by `at` (default now)")
    async def close_periods(
        tenant: AdminTenant, request: Annotated[PeriodCloseRequest | None, Body()] = None
    ) -> dict[str, Any]:
        current = now()
        at = utc_instant(request.at, "at") if request and request.at else current
        if at > current:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "`at` must not be in the future")
        published = await closer.close_due(at, tenant)
        return {"published": [_published(p) for p in published]}

    return router


def _published(report: PublishedReport) -> dict[str, Any]:
    return {
        "report_id": report.report_id,
        "period_start": report.period_start.isoformat(),
        "period_end": report.period_end.isoformat(),
        "label": report.label,
        "scope": report.scope,
        "revision": report.revision,
        "kind": report.kind,
        "amends": report.amends,
        "links": report.links,
    }


def dashboard_router(
    service: ReportService,
    authenticator: ApiKeyAuthenticator,
    settings: ReportingSettings,
    now: Now,
    units: Units,
    policy: SessionPolicy,
) -> APIRouter:
    router = APIRouter(prefix=DASHBOARD_PATH, tags=["dashboard"])
    adapter = _dashboard_adapter()
    trusted = trusted_origins([settings.public_base_url, *settings.dashboard_trusted_origins.split(",")])

    def set_cookie(response: Response, request: Request, session_id: str) -> None:
        # Secure whenever the browser reached us over HTTPS, also through a trusted TLS-terminating proxy.
        response.set_cookie(
            DASHBOARD_COOKIE,
            session_id,
            httponly=True,
            samesite="strict",
            path=DASHBOARD_PATH,
            secure=request.url.scheme == "https",
            max_age=settings.dashboard_session_seconds,
        )

    def page(html: str, nonce: str, status_code: int = 200) -> HTMLResponse:
        return HTMLResponse(
            html,
            status_code=status_code,
            headers={"Cache-Control": "no-store", "Content-Security-Policy": dashboard_policy(nonce)},
        )

    def from_this_site(request: Request) -> bool:
        return form_origin_allowed(
            request.headers.get("origin"), request.headers.get("referer"), own_origin(request), trusted
        )

    async def viewer(request: Request) -> str | None:
        """The tenant of a bearer key (API clients; a wrong key is a 401) or of the session cookie, else None."""
        authorization = request.headers.get("authorization")
        if authorization is not None:
            return await authenticator.tenant_for(authorization, scope="read")
        session_id = request.cookies.get(DASHBOARD_COOKIE)
        if not session_id:
            return None
        async with units() as uow:
            found = await uow.signins.resolve(session_id, now(), policy)
            await uow.commit()
        return found.tenant_id if found else None

    def signed_out(fragment: bool) -> Response:
        if fragment:
            response: Response = JSONResponse({"detail": "sign in first"}, status_code=401)
        else:
            response = RedirectResponse(f"{DASHBOARD_PATH}/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(DASHBOARD_COOKIE, path=DASHBOARD_PATH)
        return response

    @router.get("", response_class=HTMLResponse, summary="The live dashboard of the signed-in tenant")
    async def live(request: Request, fragment: bool = False, lang: str | None = None) -> Response:
        if "key" in request.query_params:  # keys never travel in URLs (proxy logs, history, Referer)
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"API keys are not accepted in URLs: sign in at {DASHBOARD_PATH}/login"
            )
        tenant = await viewer(request)
        if tenant is None:
            return signed_out(fragment)
        view = adapter.dump_python(await service.dashboard(tenant, now()), mode="json")
        nonce = new_nonce()
        language = choose_language(lang, request.headers.get("accept-language"), view["language"])
        return page(
            render_dashboard(
                view,
                fragment=fragment,
                refresh_seconds=settings.dashboard_refresh_seconds,
                nonce=nonce,
                language=language,
            ),
            nonce,
        )

    @router.get("/data", summary="The dashboard's content as JSON")
    async def data(request: Request) -> Response:
        tenant = await viewer(request)
        if tenant is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "sign in first or send a bearer API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        document: dict[str, Any] = adapter.dump_python(await service.dashboard(tenant, now()), mode="json")
        return JSONResponse(document, headers={"Cache-Control": "no-store"})

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form() -> HTMLResponse:
        nonce = new_nonce()
        return page(render_login(error=None, nonce=nonce), nonce)

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        nonce = new_nonce()
        if not from_this_site(request):
            return page(render_login(error="This sign-in did not come from this site.", nonce=nonce), nonce, 403)
        form = parse_qs((await request.body()).decode(errors="replace"))
        key = (form.get("key") or [""])[0].strip()
        key_id = key_id_of(key)
        try:
            tenant = await authenticator.tenant_for(f"Bearer {key}", scope="read")
        except HTTPException as refused:
            if refused.status_code == status.HTTP_403_FORBIDDEN:  # a valid key without the `read` scope
                return page(render_login(error="That key may not read reports.", nonce=nonce), nonce, 403)
            return page(render_login(error="That key is not valid.", nonce=nonce), nonce, 401)
        assert key_id is not None  # the authenticator accepted it, so it parsed
        async with units() as uow:
            if previous := request.cookies.get(DASHBOARD_COOKIE):  # a sign-in always starts a new session
                await uow.signins.close(previous)
            session_id = await uow.signins.open(key_id, tenant, now(), policy)
            await uow.commit()
        response = RedirectResponse(DASHBOARD_PATH, status_code=status.HTTP_303_SEE_OTHER)
        set_cookie(response, request, session_id)
        return response

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        if not from_this_site(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this sign-out did not come from this site")
        if session_id := request.cookies.get(DASHBOARD_COOKIE):
            async with units() as uow:
                await uow.signins.close(session_id)  # the server forgets it: a copied cookie is dead too
                await uow.commit()
        response = RedirectResponse(f"{DASHBOARD_PATH}/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(DASHBOARD_COOKIE, path=DASHBOARD_PATH)
        return response

    return router


def _dashboard_adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(DashboardView)
